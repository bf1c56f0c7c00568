export { createInputChecker, type InputChecker, type InputProblem, type InputCheckResult } from './input-check';
