export { pipeline } from './pipeline.workflow';
export { backup } from './backup.workflow';
