import { Router } from 'express';
import { ForbiddenError } from './errors';
import { hasRole, principalOf } from './run-lookup';
import type { SystemStatusSource } from './system-status-source';

/** Roles that may read the system status: it describes the whole installation, not one tenant. */
export const SYSTEM_STATUS_ROLES = ['operator', 'admin'] as const;

/** `GET /v1/system/status`: current issues (CPU, memory, error rate, run time, backlogs) with a recommendation each. */
export function createSystemStatusRoutes(deps: { status: SystemStatusSource }): Router {
  const router = Router();
  router.get('/v1/system/status', async (req, res) => {
    if (!hasRole(principalOf(req), SYSTEM_STATUS_ROLES)) {
      throw new ForbiddenError(`reading the system status needs one of the roles: ${SYSTEM_STATUS_ROLES.join(', ')}`);
    }
    res.json(await deps.status.read());
  });
  return router;
}
