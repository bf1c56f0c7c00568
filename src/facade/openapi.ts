import { AUDIT_EVENT_TYPES } from '../contracts';
import type { RequestHandler } from 'express';
import { AppError } from './errors';

/**
 * The facade's OpenAPI 3.1 description, served at `/openapi.json`. Kept beside the routes it describes; the e2e
 * suite checks that every route answers as described.
 */
const problem = {
  description: 'Problem details (RFC 9457)',
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};
// 431 (request line and headers over the server's limit) can answer any operation, so every one documents it.
const errors = (...codes: number[]) => Object.fromEntries([...codes, 431].map((c) => [String(c), problem]));
const runPath = [
  { name: 'pipeline', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
  { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
];
const json = (schema: Record<string, unknown>) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
// Protobuf JSON bytes: the standard or the URL-safe alphabet, padded or not (src/codec/payload-json.ts).
const base64 = { type: 'string', contentEncoding: 'base64', pattern: '^[A-Za-z0-9+/_-]*={0,2}$' };
const auditTypes = AUDIT_EVENT_TYPES.map((t) => t.replaceAll('.', '\\.')).join('|');
const stageStatuses = ['pending', 'running', 'awaiting-approval', 'completed', 'skipped', 'failed', 'cancelled'];
const runStatuses = ['running', 'awaiting-approval', 'completed', 'failed', 'cancelled'];

export function buildOpenApi(opts: { version: string; pipelines: string[] }) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'agentry facade',
      version: opts.version,
      description:
        'Start, inspect, list, approve, signal, cancel and follow pipeline runs. Every run is a durable Temporal workflow.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            code: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
        StageState: {
          type: 'object',
          required: ['name', 'kind', 'status', 'attempts'],
          properties: {
            name: { type: 'string' },
            kind: { enum: ['agent', 'approval', 'parallel'] },
            agent: { type: 'string', description: 'The agent an agent stage runs; absent for approval and parallel stages' },
            group: { type: 'string', description: 'The parallel group an agent stage belongs to' },
            compensation: { type: 'boolean' },
            status: { enum: stageStatuses },
            attempts: { type: 'integer' },
            startedAt: { type: 'number' },
            finishedAt: { type: 'number' },
            output: {},
            error: { type: 'object' },
            usage: ref('StageUsage'),
          },
        },
        SystemStatus: {
          type: 'object',
          required: ['status', 'checkedAt', 'issues', 'thresholds'],
          properties: {
            status: { enum: ['ok', 'info', 'warning', 'critical'], description: 'The worst severity among the issues' },
            checkedAt: { type: 'string', format: 'date-time' },
            issues: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'severity', 'summary', 'value', 'threshold', 'recommendation'],
                properties: {
                  id: { type: 'string', description: 'Stable per condition, e.g. `memory` or `approval-backlog:support-triage`' },
                  severity: { enum: ['info', 'warning', 'critical'] },
                  summary: { type: 'string' },
                  value: { type: ['number', 'null'], description: 'The measured value, in the unit of the threshold' },
                  threshold: { type: ['number', 'null'], description: 'The level it crossed' },
                  recommendation: { type: 'string' },
                },
              },
            },
            thresholds: {
              type: 'object',
              description: 'The levels in force (STATUS_THRESHOLDS over the defaults)',
              additionalProperties: {
                type: 'object',
                required: ['warning', 'critical'],
                properties: { warning: { type: 'number' }, critical: { type: 'number' } },
              },
            },
          },
        },
        StageUsage: {
          type: 'object',
          description: 'Model tokens and their cost, as one stage used them',
          required: ['promptTokens', 'completionTokens', 'totalTokens', 'costUsd'],
          properties: {
            model: { type: 'string' },
            promptTokens: { type: 'integer', minimum: 0 },
            completionTokens: { type: 'integer', minimum: 0 },
            totalTokens: { type: 'integer', minimum: 0 },
            costUsd: { type: 'number', minimum: 0, description: 'Priced by LLM_PRICES; 0 for unpriced models' },
          },
        },
        Run: {
          type: 'object',
          required: ['runId', 'pipeline', 'status', 'stages'],
          properties: {
            runId: { type: 'string' },
            pipeline: { type: 'string' },
            version: { type: 'integer' },
            status: { enum: [...runStatuses, 'unknown'] },
            stages: { type: 'array', items: { $ref: '#/components/schemas/StageState' } },
            approvals: { type: 'array', items: ref('ApprovalRecord') },
            signals: {
              type: 'array',
              items: { type: 'object', properties: { name: { type: 'string' }, actor: { type: 'string' }, at: { type: 'number' } } },
            },
            signalsDropped: { type: 'integer', minimum: 1, description: 'plain Temporal signals dropped because the run had received limits.maxSignals' },
            cancellation: { type: 'object', properties: { actor: { type: 'string' }, reason: { type: 'string' } } },
            transitions: { type: 'array', items: ref('Transition') },
            spend: {
              type: 'object',
              description: "Model tokens and cost used by the run's stages so far",
              properties: { tokens: { type: 'integer', minimum: 0 }, costUsd: { type: 'number', minimum: 0 } },
            },
            outputs: { type: 'object' },
            error: { type: 'object' },
            startedAt: { type: 'string', format: 'date-time' },
            closedAt: { type: 'string', format: 'date-time' },
            links: { type: 'object', properties: { ui: { type: 'string' } } },
          },
        },
        Transition: {
          type: 'object',
          description: 'One stage (or run) transition; `seq` numbers them 1, 2, 3... and is the SSE event id.',
          required: ['seq', 'at', 'status'],
          properties: {
            seq: { type: 'integer', minimum: 1 },
            at: { type: 'number', description: 'Epoch milliseconds (workflow time)' },
            stage: { type: 'string', description: 'Absent for transitions of the run itself' },
            status: { enum: [...new Set([...stageStatuses, ...runStatuses])] },
            detail: { type: 'string' },
          },
        },
        ApprovalRequest: {
          type: 'object',
          required: ['stage', 'decision'],
          additionalProperties: false,
          properties: {
            stage: { type: 'string', minLength: 1, maxLength: 128 },
            decision: { enum: ['approve', 'reject'] },
            comment: { type: 'string', maxLength: 2000 },
          },
        },
        ApprovalRecord: {
          type: 'object',
          required: ['stage', 'decision', 'approver', 'decidedAt'],
          properties: {
            stage: { type: 'string' },
            decision: { enum: ['approved', 'rejected', 'timed_out'] },
            approver: { type: 'string', description: 'Subject of the approver; `system` when a timeout decided' },
            comment: { type: 'string' },
            decidedAt: { type: 'number', description: 'Epoch milliseconds when the decision arrived' },
            appliedAt: { type: 'number', description: 'Epoch milliseconds when it was applied (absent while the stage is not yet reached)' },
            escalated: { type: 'boolean' },
          },
        },
        SignalRequest: {
          type: 'object',
          additionalProperties: false,
          properties: { payload: { type: 'object', description: 'Referable in the definition as ${signals.<name>.<field>}' } },
        },
        CancelRequest: {
          type: 'object',
          required: ['reason'],
          additionalProperties: false,
          properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } },
        },
        Payloads: {
          type: 'object',
          description: 'Temporal payloads in protobuf JSON form (the codec server protocol); bytes are base64.',
          required: ['payloads'],
          properties: {
            payloads: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  // Protobuf JSON reads null as the field's default (no metadata, empty data).
                  metadata: { type: ['object', 'null'], additionalProperties: base64 },
                  data: { ...base64, type: ['string', 'null'] },
                },
              },
            },
          },
        },
        AuditEvent: {
          type: 'object',
          description:
            'One link of the tenant\'s hash chain. `hash` = sha256 over the RFC 8785 canonical JSON of the event ' +
            '(id, tenant, chainIndex, runId, type, actor, pipeline, pipelineVersion, definitionHash, stage, data, occurredAt) ' +
            'and `prevHash`. In `data`, `ip`, `userAgent`, `comment` and `reason` are sealed (AES-256-GCM) as ' +
            '`{"$sealed":"A256GCM","kid","iv","ct","tag"}`; the chain covers the sealed form.',
          required: ['id', 'chainIndex', 'runId', 'type', 'actor', 'data', 'occurredAt', 'prevHash', 'hash'],
          properties: {
            id: { type: 'string' },
            chainIndex: { type: 'integer', minimum: 1 },
            tenant: { type: 'string' },
            runId: { type: 'string', description: '`{pipeline}/{id}`, or `-` for events about callers' },
            type: { enum: [...AUDIT_EVENT_TYPES] },
            actor: { type: 'string' },
            pipeline: { type: ['string', 'null'] },
            pipelineVersion: { type: ['integer', 'null'] },
            definitionHash: { type: ['string', 'null'] },
            stage: { type: ['string', 'null'] },
            data: { type: 'object' },
            occurredAt: { type: 'string', format: 'date-time' },
            recordedAt: { type: 'string', format: 'date-time' },
            prevHash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          },
        },
        AuditPage: {
          type: 'object',
          required: ['events'],
          properties: {
            runId: { type: 'string' },
            events: { type: 'array', items: ref('AuditEvent') },
            nextCursor: { type: 'string', description: 'Pass as `cursor` for the next page; absent on the last page' },
          },
        },
        RunStarted: {
          type: 'object',
          required: ['runId', 'pipeline', 'status'],
          properties: {
            runId: { type: 'string' },
            pipeline: { type: 'string' },
            version: { type: 'integer' },
            status: { const: 'running' },
            links: { type: 'object' },
          },
        },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/pipelines': {
        get: {
          summary: 'Pipelines the caller may start or read',
          responses: {
            '200': { description: 'Pipelines', content: { 'application/json': { schema: { type: 'object' } } } },
            ...errors(401, 429, 503),
          },
        },
      },
      '/v1/pipelines/{pipeline}/runs': {
        post: {
          summary: 'Start a run',
          description:
            'Limits (every /v1 route): 429 `rate_limited` (`limit`: `subject` or `tenant`, with `Retry-After` and ' +
            '`RateLimit-*`); 403 `temporarily_blocked` after repeated 401/403 answers; 503 `limiter_unavailable` when the ' +
            'limits store is down. Here also 429 `concurrency_limited` (`limit`: `tenant_active_runs` or ' +
            '`pipeline_active_runs`) when the tenant or the pipeline has as many active runs as it may.',
          parameters: [
            { name: 'pipeline', in: 'path', required: true, schema: { type: 'string', enum: opts.pipelines } },
            { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', minLength: 1, maxLength: 255 } },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { type: 'object', required: ['input'], additionalProperties: false, properties: { input: { type: 'object' } } },
              },
            },
          },
          responses: {
            '202': { description: 'Run started', content: { 'application/json': { schema: { $ref: '#/components/schemas/RunStarted' } } } },
            '200': { description: 'The run this Idempotency-Key already started', content: { 'application/json': { schema: { $ref: '#/components/schemas/RunStarted' } } } },
            ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/runs': {
        get: {
          summary: "List the caller's tenant's runs",
          parameters: [
            { name: 'pipeline', in: 'query', schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
            { name: 'status', in: 'query', schema: { enum: runStatuses } },
            { name: 'pageSize', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } },
            {
              name: 'cursor',
              in: 'query',
              description: 'The `nextCursor` of a previous page of the same listing (same filters, same tenant); anything else is 400',
              schema: { type: 'string', maxLength: 4096, pattern: '^[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]+$' },
            },
          ],
          responses: {
            '200': {
              description: 'A page of runs',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['runs'],
                    properties: { runs: { type: 'array', items: { type: 'object' } }, nextCursor: { type: 'string' } },
                  },
                },
              },
            },
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}': {
        get: {
          summary: 'A run: status, per-stage state, result',
          parameters: runPath,
          responses: {
            '200': { description: 'The run', content: { 'application/json': { schema: { $ref: '#/components/schemas/Run' } } } },
            ...errors(401, 403, 404, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}/approvals': {
        post: {
          summary: 'Approve or reject an approval stage of a running run',
          description:
            'Needs a role in the pipeline\'s `access.approve` and, checked by the run itself, one of the stage\'s own roles. ' +
            'A decision sent before the stage is reached is kept and applied when it is. Refusals for lack of a role are ' +
            'recorded in the audit trail as `security.denied`. Problem codes: 400 `validation_failed`; 403 `forbidden`, ' +
            '`self_approval_forbidden` (the principal that started the run); 404 `not_found` (run), `unknown_stage`; ' +
            '409 `run_completed`, `approval_not_pending` (already decided, skipped or passed).',
          parameters: runPath,
          requestBody: { required: true, content: json(ref('ApprovalRequest')) },
          responses: {
            '200': { description: 'The recorded decision', content: json(ref('ApprovalRecord')) },
            ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}/signals/{name}': {
        post: {
          summary: 'Send a signal the pipeline declares to a running run',
          description:
            'Needs a role in `access.signal`. The run records the signal before the answer. Problem codes: 400 `validation_failed`; ' +
            '403 `forbidden`; 404 `not_found` (run), `unknown_signal` (not in the definition\'s `signals`); 409 `run_completed`, ' +
            '`signal_limit_reached` (the run has had `limits.maxSignals`); 413 `payload_too_large` (payload over `limits.maxSignalBytes`).',
          parameters: [...runPath, { name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: { required: false, content: json(ref('SignalRequest')) },
          responses: {
            '202': {
              description: 'Signal recorded by the run',
              content: json({
                type: 'object',
                required: ['runId', 'signal', 'status', 'received', 'max'],
                properties: {
                  runId: { type: 'string' },
                  signal: { type: 'string' },
                  status: { const: 'accepted' },
                  received: { type: 'integer', minimum: 1, description: 'signals the run has received, this one included' },
                  max: { type: 'integer', minimum: 1, description: "the most it takes (the definition's limits.maxSignals)" },
                },
              }),
            },
            ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}/cancel': {
        post: {
          summary: 'Cancel a running run',
          description:
            'Needs a role in `access.cancel`. The run compensates, records who cancelled it and why (`run.cancelled`) and ' +
            'ends `cancelled`. Problem codes: 400 `validation_failed`; 403 `forbidden`; 404 `not_found`; 409 `run_completed`.',
          parameters: runPath,
          requestBody: { required: true, content: json(ref('CancelRequest')) },
          responses: {
            '202': {
              description: 'Cancellation requested',
              content: json({
                type: 'object',
                required: ['runId', 'status'],
                properties: { runId: { type: 'string' }, status: { const: 'cancelling' } },
              }),
            },
            ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}/events': {
        get: {
          summary: "The run's transitions as Server-Sent Events",
          description:
            'Each transition is sent as `id: <seq>`, `event: transition`, `data: <Transition JSON>`, in order. Reconnecting ' +
            'with `Last-Event-ID` (or `?lastEventId=`) sends only later ones. Once the run has closed and everything was ' +
            'sent, `event: end` carries `{runId, status, temporalStatus, lastEventId}` and the stream ends. A `: keep-alive` ' +
            'comment every 15 s; a stream lasts at most an hour (reconnect to continue). Needs a role in `access.read`. ' +
            'A caller may hold `EVENT_STREAMS_PER_SUBJECT` streams open on one replica (429 `too_many_streams` beyond), ' +
            'a replica `EVENT_STREAMS_MAX` in all (503 `streams_exhausted` beyond).',
          parameters: [
            ...runPath,
            // Empty means "from the first transition", as for a client that has seen none.
            { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string', pattern: '^\\s*([0-9]{1,15})?\\s*$' } },
            { name: 'lastEventId', in: 'query', required: false, schema: { type: 'string', pattern: '^\\s*([0-9]{1,15})?\\s*$' } },
          ],
          responses: {
            '200': {
              description: 'Event stream',
              content: {
                'text/event-stream': {
                  // One object per event, as SSE parsers hand them over.
                  schema: {
                    type: 'object',
                    required: ['data'],
                    properties: {
                      event: { enum: ['transition', 'end'] },
                      id: { type: 'string', pattern: '^[0-9]{1,15}$' },
                      data: { type: 'string', contentMediaType: 'application/json', description: 'A Transition (`transition`) or the closing summary (`end`)' },
                    },
                  },
                  'x-event-data': ref('Transition'),
                },
              },
            },
            ...errors(400, 401, 403, 404, 429, 503),
          },
        },
      },
      '/codec/decode': {
        post: {
          summary: 'Decrypt payloads (what the Web UI calls to show them)',
          description:
            'Codec server for the Temporal Web UI and CLI (`--codec-endpoint`). Needs a bearer token with any role. ' +
            'Browsers on CODEC_CORS_ORIGINS get CORS answers (OPTIONS preflight: 204). `X-Namespace` is accepted and ignored. ' +
            'Payloads that are not encrypted come back unchanged. Problem codes: 400 `validation_failed`, `invalid_json`; ' +
            '401; 403 `forbidden`, `origin_not_allowed`; 415; 422 `payload_undecodable` (unknown key id, altered data).',
          parameters: [{ name: 'X-Namespace', in: 'header', required: false, schema: { type: 'string' } }],
          requestBody: { required: true, content: json(ref('Payloads')) },
          responses: {
            '200': { description: 'The payloads, decrypted', content: json(ref('Payloads')) },
            ...errors(400, 401, 403, 413, 415, 422),
          },
        },
      },
      '/codec/encode': {
        post: {
          summary: 'Encrypt payloads with the active key',
          description:
            'Codec server for the Temporal Web UI and CLI (`--codec-endpoint`). Needs a bearer token with any role. ' +
            'Browsers on CODEC_CORS_ORIGINS get CORS answers (OPTIONS preflight: 204). `X-Namespace` is accepted and ignored. ' +
            'With PAYLOAD_ENCRYPTION=false the payloads come back unchanged.',
          parameters: [{ name: 'X-Namespace', in: 'header', required: false, schema: { type: 'string' } }],
          requestBody: { required: true, content: json(ref('Payloads')) },
          responses: {
            '200': { description: 'The payloads, encrypted', content: json(ref('Payloads')) },
            ...errors(400, 401, 403, 413, 415),
          },
        },
      },
      '/v1/audit': {
        get: {
          summary: "The caller's tenant's audit trail",
          description:
            'Needs the role `auditor`. Events in chain order, filtered; all filters combine. `from` is inclusive, `to` ' +
            'exclusive (occurredAt). Problem codes: 400 `validation_failed` (bad filter, naming it); 403 `forbidden`.',
          parameters: [
            { name: 'run', in: 'query', schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}/[A-Za-z0-9_-]{1,64}$' } },
            { name: 'actor', in: 'query', schema: { type: 'string', minLength: 1, maxLength: 256 } },
            {
              name: 'type',
              in: 'query',
              description: 'One type or a comma list',
              schema: { type: 'string', pattern: `^(${auditTypes})( *, *(${auditTypes})){0,${AUDIT_EVENT_TYPES.length - 1}}$` },
            },
            { name: 'from', in: 'query', schema: { type: 'string', format: 'date-time' } },
            { name: 'to', in: 'query', schema: { type: 'string', format: 'date-time' } },
            { name: 'cursor', in: 'query', schema: { type: 'string', pattern: '^[0-9]{1,15}$' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
          ],
          responses: {
            '200': { description: 'A page of events', content: json(ref('AuditPage')) },
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
      '/v1/runs/{pipeline}/{id}/audit': {
        get: {
          summary: "A run's audit trail",
          description:
            'Needs a role in the pipeline\'s `access.read`, or `auditor`. Read from PostgreSQL, so it stays readable after ' +
            'Temporal has dropped the run. Problem codes: 400 `validation_failed`; 403 `forbidden`; 404 `not_found`.',
          parameters: [
            ...runPath,
            { name: 'cursor', in: 'query', schema: { type: 'string', pattern: '^[0-9]{1,15}$' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
          ],
          responses: {
            '200': { description: "The run's events", content: json(ref('AuditPage')) },
            ...errors(400, 401, 403, 404, 429, 503),
          },
        },
      },
      '/v1/system/status': {
        get: {
          summary: 'Current issues of the installation',
          description:
            'Needs the role `operator` or `admin`. Judges CPU and memory of this facade, its API error ratio (5xx), the ' +
            'p95 run time of each pipeline over the last hour, the task-queue backlog and pollers, and the approval ' +
            'backlog, against the levels in STATUS_THRESHOLDS. Only conditions past a level are listed, worst first. ' +
            'Problem codes: 403 `forbidden`.',
          responses: {
            '200': { description: 'The issues, worst first', content: json(ref('SystemStatus')) },
            ...errors(401, 403, 429, 503),
          },
        },
      },
      '/health': { get: { summary: 'Liveness', security: [], responses: { '200': { description: 'Alive' } } } },
      '/ready': {
        get: {
          summary: 'Readiness of Temporal, PostgreSQL, the limiter store and of workers polling the task queue',
          security: [],
          responses: { '200': { description: 'Ready' }, ...errors(503) },
        },
      },
      '/metrics': { get: { summary: 'Prometheus metrics', security: [], responses: { '200': { description: 'Metrics', content: { 'text/plain': {} } } } } },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI document' } } } },
    },
  };
}

/**
 * Answers 405 (with `Allow`) for a method the description does not list on a path it does describe, instead of
 * the 404 a missing route would give. OPTIONS passes through (CORS preflights of the codec routes).
 */
export function methodNotAllowed(doc: { paths: Record<string, object> }): RequestHandler {
  const routes = Object.entries(doc.paths).map(([template, ops]) => {
    const methods = Object.keys(ops).map((m) => m.toUpperCase());
    if (methods.includes('GET')) methods.push('HEAD');
    const pattern = template.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+');
    return { re: new RegExp(`^${pattern}$`), methods };
  });
  return (req, _res, next) => {
    if (req.method === 'OPTIONS') return next();
    const allowed = routes.filter((r) => r.re.test(req.path)).flatMap((r) => r.methods);
    if (allowed.length === 0 || allowed.includes(req.method)) return next();
    next(
      new AppError(405, 'method_not_allowed', 'Method not allowed', `${req.method} is not allowed here; use ${allowed.join(', ')}`, {}, {
        Allow: allowed.join(', '),
      }),
    );
  };
}
