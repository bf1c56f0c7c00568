import { createHash, randomUUID } from 'node:crypto';
import { Router } from 'express';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import { z } from 'zod';
import {
  PIPELINE_WORKFLOW,
  SA_PIPELINE,
  SA_STATUS,
  SA_TENANT,
  type PipelineRunInput,
} from '../contracts';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';
import type { InputChecker } from '../security';
import type { HttpMetrics } from '../telemetry';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from './errors';
import { contentHash } from '../audit/audit-chain';
import { createListCursors } from './list-cursor';
import type { RunAdmission } from './run-admission';
import { describeRun, findRun, principalOf, requireRole, slug } from './run-lookup';
import { pageSizeParam } from './query-schemas';

export interface RunRoutesDeps {
  temporal: Client;
  taskQueue: string;
  pipelines: PipelineCatalog;
  checker: InputChecker;
  metrics: HttpMetrics;
  /** Base of the Web UI, for links in responses. */
  uiUrl: string;
  /** Concurrency caps on active runs; without it starts are not capped. */
  admission?: RunAdmission;
  /** Keys of the run-list cursors' MAC, the same on every replica; the first signs. @default random (one process only) */
  cursorKeys?: Buffer[];
}

const idempotencyKeySchema = z.string().min(1).max(255).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII');
const startBodySchema = z.object({ input: z.record(z.string(), z.unknown()) }).strict();
const listQuerySchema = z
  .object({
    pipeline: z.string().regex(slug).optional(),
    status: z.enum(['running', 'awaiting-approval', 'completed', 'failed', 'cancelled']).optional(),
    pageSize: pageSizeParam(200, 50),
    cursor: z.string().max(4096).optional(),
  })
  .strict();

function zodProblems(err: z.ZodError) {
  return err.issues.map((i) => ({ path: `/${i.path.join('/')}`, message: i.message }));
}

export function createRunRoutes(deps: RunRoutesDeps): Router {
  const router = Router();
  const cursors = createListCursors(deps.cursorKeys);

  router.post('/v1/pipelines/:pipeline/runs', async (req, res) => {
    const principal = principalOf(req);
    const pipeline = deps.pipelines.get(String(req.params.pipeline));
    if (!pipeline) throw new NotFoundError(`pipeline "${req.params.pipeline}"`);
    const def = pipeline.definition;
    requireRole(principal, def.access.start, 'starting a run', def.name);

    const body = startBodySchema.safeParse(req.body);
    if (!body.success) throw new ValidationError('the body must be {"input": {...}}', zodProblems(body.error));
    const checked = deps.checker.check(def.input, pipeline.hash, body.data.input, def.limits.maxInputBytes);
    if (!checked.ok) {
      throw new ValidationError(
        `input does not match the "${def.name}" input schema`,
        checked.problems.map((p) => ({ path: `/input${p.path}`, message: p.message })),
      );
    }

    const keyHeader = req.header('Idempotency-Key');
    let id: string;
    if (keyHeader !== undefined) {
      const key = idempotencyKeySchema.safeParse(keyHeader);
      if (!key.success) throw new ValidationError('invalid Idempotency-Key header', [{ path: 'header:Idempotency-Key', message: key.error.issues[0].message }]);
      id = createHash('sha256').update(`${principal.tenant}\n${def.name}\n${key.data}`).digest('base64url').slice(0, 26);
    } else {
      id = randomUUID();
    }
    const runId = `${def.name}/${id}`;
    const workflowId = `${principal.tenant}/${runId}`;
    const requestId = String(res.getHeader('X-Request-Id') ?? randomUUID());
    // Canonical JSON (RFC 8785): the same input with its keys in another order is the same request. Runs started
    // before this hashed plain JSON.stringify, which a retry of theirs still matches.
    const requestHash = contentHash(body.data.input);
    const legacyRequestHash = createHash('sha256').update(JSON.stringify(body.data.input)).digest('hex');
    // Whether this request created the run is told by a value of the server's own, not the client's X-Request-Id.
    const startNonce = randomUUID();
    const args: PipelineRunInput = {
      runId,
      definition: def,
      definitionHash: pipeline.hash,
      input: body.data.input,
      principal,
      request: { requestId, ip: req.ip, userAgent: req.header('user-agent') },
    };
    // Concurrency caps (run-admission.ts): a slot before the start; `settle` frees it unless the run is running.
    const slot = await deps.admission?.admit({ tenant: principal.tenant, definition: def, runId, workflowId, keyed: keyHeader !== undefined });
    let created = true;
    try {
      await deps.temporal.workflow.start(PIPELINE_WORKFLOW, {
        taskQueue: deps.taskQueue,
        workflowId,
        args: [args],
        memo: { requestHash, requestId, startNonce },
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        // With a key, a concurrent retry joins the running run instead of failing.
        workflowIdConflictPolicy: keyHeader !== undefined ? WorkflowIdConflictPolicy.USE_EXISTING : WorkflowIdConflictPolicy.FAIL,
        typedSearchAttributes: [
          { key: SA_TENANT, value: principal.tenant },
          { key: SA_PIPELINE, value: def.name },
          { key: SA_STATUS, value: 'running' },
        ],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError) || keyHeader === undefined) {
        await slot?.settle();
        throw err;
      }
      created = false;
    }
    if (keyHeader !== undefined) {
      const { memo } = await deps.temporal.workflow.getHandle(workflowId).describe();
      if (memo?.requestHash !== requestHash && memo?.requestHash !== legacyRequestHash) {
        await slot?.settle();
        throw new ConflictError('idempotency_key_reused', 'this Idempotency-Key was used with a different body');
      }
      created = created && memo?.startNonce === startNonce;
    }
    if (created) slot?.keep();
    else await slot?.settle();
    if (created) deps.metrics.runsStarted.inc({ workflow_name: def.name });
    res
      .status(created ? 202 : 200)
      .location(`/v1/runs/${runId}`)
      .json({ runId, pipeline: def.name, version: def.version, status: 'running', links: { self: `/v1/runs/${runId}`, ui: `${deps.uiUrl}/namespaces/${encodeURIComponent(deps.temporal.options.namespace)}/workflows/${encodeURIComponent(workflowId)}` } });
  });

  router.get('/v1/runs/:pipeline/:id', async (req, res) => {
    const run = await findRun(deps, req);
    // Runs of a pipeline that is no longer loaded stay readable by admins and auditors only.
    requireRole(run.principal, run.entry?.definition.access.read ?? ['admin', 'auditor'], 'reading a run', run.pipelineName);
    res.json(await describeRun(deps.temporal, deps.uiUrl, run));
  });

  router.get('/v1/runs', async (req, res) => {
    const principal = principalOf(req);
    const q = listQuerySchema.safeParse(req.query);
    if (!q.success) throw new ValidationError('invalid query parameters', zodProblems(q.error));
    const clauses = [`WorkflowType = '${PIPELINE_WORKFLOW}'`, `${SA_TENANT.name} = '${principal.tenant}'`];
    if (q.data.pipeline) clauses.push(`${SA_PIPELINE.name} = '${q.data.pipeline}'`);
    if (q.data.status) clauses.push(`${SA_STATUS.name} = '${q.data.status}'`);
    const readable = deps.pipelines.list().filter((p) => principal.roles.some((r) => p.definition.access.read.includes(r)));
    if (readable.length === 0) throw new ForbiddenError('no pipeline grants your roles read access');
    clauses.push(`${SA_PIPELINE.name} IN (${readable.map((p) => `'${p.definition.name}'`).join(', ')})`);
    const query = clauses.join(' AND ');
    const nextPageToken = q.data.cursor !== undefined ? cursors.decode(principal.tenant, query, q.data.cursor) : undefined;
    const page = await deps.temporal.workflowService.listWorkflowExecutions({
      namespace: deps.temporal.options.namespace,
      query,
      pageSize: q.data.pageSize,
      nextPageToken,
    });
    const runs = (page.executions ?? []).map((e) => {
      const workflowId = e.execution?.workflowId ?? '';
      const fields = e.searchAttributes?.indexedFields ?? {};
      const read = (name: string) => {
        const data = fields[name]?.data;
        return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as string) : undefined;
      };
      return {
        runId: workflowId.slice(principal.tenant.length + 1),
        pipeline: read(SA_PIPELINE.name),
        status: read(SA_STATUS.name),
        startedAt: e.startTime?.seconds ? new Date(Number(e.startTime.seconds) * 1000).toISOString() : undefined,
        closedAt: e.closeTime?.seconds ? new Date(Number(e.closeTime.seconds) * 1000).toISOString() : undefined,
      };
    });
    const token = page.nextPageToken && page.nextPageToken.length > 0 ? cursors.encode(principal.tenant, query, page.nextPageToken) : undefined;
    res.json({ runs, nextCursor: token });
  });

  return router;
}
