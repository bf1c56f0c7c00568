import { Router } from 'express';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';

/** `GET /v1/pipelines`: what the caller may start or read, with each pipeline's input schema. */
export function createPipelineRoutes(deps: { pipelines: PipelineCatalog }): Router {
  const router = Router();
  router.get('/v1/pipelines', (req, res) => {
    const roles = req.principal?.roles ?? [];
    const visible = deps.pipelines
      .list()
      .filter(({ definition: d }) => roles.some((r) => d.access.read.includes(r) || d.access.start.includes(r)));
    res.json({
      pipelines: visible.map(({ definition: d, hash }) => ({
        name: d.name,
        version: d.version,
        description: d.description,
        definitionHash: hash,
        input: d.input,
        stages: d.stages.map((s) => ({ name: s.name, agent: s.agent })),
        canStart: roles.some((r) => d.access.start.includes(r)),
      })),
    });
  });
  return router;
}
