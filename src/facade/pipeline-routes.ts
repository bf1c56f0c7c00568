import { Router } from 'express';
import type { Stage } from '../pipelines/definition-schema';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';

/** A stage as callers see it: its kind, and the agent (or the agents of a parallel group) it runs. */
function describeStage(s: Stage): Record<string, unknown> {
  switch (s.kind) {
    case 'agent':
      return { name: s.name, kind: s.kind, agent: s.agent };
    case 'approval':
      return { name: s.name, kind: s.kind, roles: s.roles };
    case 'parallel':
      return { name: s.name, kind: s.kind, stages: s.stages.map(describeStage) };
    default:
      return { name: (s as { name: string }).name };
  }
}

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
        stages: d.stages.map(describeStage),
        signals: (d as { signals?: readonly string[] }).signals ?? [],
        canStart: roles.some((r) => d.access.start.includes(r)),
      })),
    });
  });
  return router;
}
