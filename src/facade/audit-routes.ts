import { Router, type Request } from 'express';
import { z } from 'zod';
import type { AuditStore, StoredAuditEvent } from '../audit';
import { AUDIT_EVENT_TYPES } from '../contracts';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';
import { ForbiddenError, NotFoundError, ValidationError } from './errors';
import { principalOf, requireRole, slug } from './run-lookup';
import { pageSizeParam } from './query-schemas';

/** What the audit routes read. */
export type AuditReader = Pick<AuditStore, 'page'>;

export interface AuditRoutesDeps {
  audit: AuditReader;
  pipelines: PipelineCatalog;
}

/** The role that may read a whole tenant's trail, and any run's. */
export const AUDITOR_ROLE = 'auditor';
/** Readers of runs of a pipeline that is no longer loaded (as in `GET /v1/runs/:pipeline/:id`). */
const UNLOADED_PIPELINE_READERS = ['admin', 'auditor'] as const;

const runIdPattern = /^[a-z0-9][a-z0-9_-]{0,62}\/[A-Za-z0-9_-]{1,64}$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/**
 * A real calendar date-time with a zone, from 1970 to 9999: `Date.parse` alone rolls 2026-02-30 over into March,
 * and PostgreSQL refuses year 0.
 */
function isRealDateTime(v: string): boolean {
  const m = DATE_TIME.exec(v);
  if (!m) return false;
  const [year, month, day, hour, minute, second = 0, offH = 0, offM = 0] = m.slice(1).map((x) => (x === undefined ? undefined : Number(x))) as number[];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (!(year >= 1970 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59 && offH <= 23 && offM <= 59)) {
    return false;
  }
  // The zone offset can carry the instant past either end (9999-12-31T23:59-01:00 is in year 10000 in UTC).
  const instant = Date.parse(v);
  return instant >= Date.UTC(1970, 0, 1) && instant < Date.UTC(10_000, 0, 1);
}

const isoDateTime = z.string().refine(isRealDateTime, {
  message: 'expected an ISO 8601 date-time with a time zone between 1970 and 9999, e.g. 2026-01-31T12:00:00Z',
});
const cursorSchema = z.string().regex(/^\d{1,15}$/, 'expected the nextCursor of a previous page');
const limitSchema = pageSizeParam(500, 100);

const listQuerySchema = z
  .object({
    run: z.string().regex(runIdPattern, 'expected a run id, {pipeline}/{id}').optional(),
    actor: z.string().min(1).max(256).regex(/^[^\p{Cc}]+$/u, 'must not contain control characters').optional(),
    /** One type or a comma list. */
    type: z
      .string()
      .transform((v) => v.split(',').map((t) => t.trim()))
      .pipe(z.array(z.enum(AUDIT_EVENT_TYPES, { error: `each type must be one of: ${AUDIT_EVENT_TYPES.join(', ')}` })).min(1).max(AUDIT_EVENT_TYPES.length))
      .optional(),
    from: isoDateTime.optional(),
    to: isoDateTime.optional(),
    cursor: cursorSchema.optional(),
    limit: limitSchema,
  })
  .strict()
  .refine((q) => !q.from || !q.to || Date.parse(q.from) < Date.parse(q.to), { message: '"from" must be before "to"', path: ['from'] });

const runQuerySchema = z.object({ cursor: cursorSchema.optional(), limit: limitSchema }).strict();

function zodProblems(err: z.ZodError) {
  return err.issues.map((i) => ({ path: `/${i.path.join('/')}`, message: i.message }));
}

/** An event as the API answers it: sealed fields stay sealed (`agentry audit export --unseal` opens them). */
function view(e: StoredAuditEvent) {
  return {
    id: e.id,
    chainIndex: e.chainIndex,
    tenant: e.tenant,
    runId: e.runId,
    type: e.type,
    actor: e.actor,
    pipeline: e.pipeline,
    pipelineVersion: e.pipelineVersion,
    definitionHash: e.definitionHash,
    stage: e.stage,
    data: e.data,
    occurredAt: e.occurredAt,
    recordedAt: e.recordedAt,
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

function parse<T extends z.ZodType>(schema: T, req: Request): z.infer<T> {
  const q = schema.safeParse(req.query);
  if (!q.success) throw new ValidationError('invalid query parameters', zodProblems(q.error));
  return q.data;
}

/**
 * `GET /v1/audit` (role `auditor`): the caller's tenant's audit trail, filtered by run, actor, type and time, in
 * chain order with cursor pagination. `GET /v1/runs/:pipeline/:id/audit`: one run's events, for the roles that may
 * read the run and for auditors. Both read PostgreSQL only, so a run's trail stays readable after Temporal has
 * forgotten the run.
 */
export function createAuditRoutes(deps: AuditRoutesDeps): Router {
  const router = Router();

  router.get('/v1/audit', async (req, res) => {
    const principal = principalOf(req);
    if (!principal.roles.includes(AUDITOR_ROLE)) throw new ForbiddenError(`reading the audit trail needs the role "${AUDITOR_ROLE}"`);
    const q = parse(listQuerySchema, req);
    const page = await deps.audit.page({
      tenant: principal.tenant,
      runId: q.run,
      actor: q.actor,
      types: q.type,
      from: q.from ? new Date(q.from) : undefined,
      to: q.to ? new Date(q.to) : undefined,
      after: q.cursor ? Number(q.cursor) : 0,
      limit: q.limit,
    });
    res.json({ events: page.events.map(view), ...(page.next !== undefined ? { nextCursor: String(page.next) } : {}) });
  });

  router.get('/v1/runs/:pipeline/:id/audit', async (req, res) => {
    const principal = principalOf(req);
    const pipelineName = String(req.params.pipeline);
    const id = String(req.params.id);
    if (!slug.test(pipelineName) || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new NotFoundError('run');
    const entry = deps.pipelines.get(pipelineName);
    const readers = [...new Set([...(entry?.definition.access.read ?? UNLOADED_PIPELINE_READERS), AUDITOR_ROLE])];
    requireRole(principal, readers, "reading a run's audit trail", pipelineName);
    const q = parse(runQuerySchema, req);
    const page = await deps.audit.page({ tenant: principal.tenant, runId: `${pipelineName}/${id}`, after: q.cursor ? Number(q.cursor) : 0, limit: q.limit });
    // Another tenant's run has no events in this tenant's trail: not found, as for a run that never existed.
    if (page.events.length === 0 && !q.cursor) throw new NotFoundError('run');
    res.json({ runId: `${pipelineName}/${id}`, events: page.events.map(view), ...(page.next !== undefined ? { nextCursor: String(page.next) } : {}) });
  });

  return router;
}
