/**
 * The facade's OpenAPI 3.1 description, served at `/openapi.json`. Kept beside the routes it describes; the e2e
 * suite checks that every route answers as described.
 */
const problem = {
  description: 'Problem details (RFC 9457)',
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), problem]));
const runPath = [
  { name: 'pipeline', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
  { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
];

export function buildOpenApi(opts: { version: string; pipelines: string[] }) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'agentry facade',
      version: opts.version,
      description: 'Start, inspect and list pipeline runs. Every run is a durable Temporal workflow.',
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
          required: ['name', 'agent', 'status', 'attempts'],
          properties: {
            name: { type: 'string' },
            agent: { type: 'string' },
            status: { enum: ['pending', 'running', 'completed', 'skipped', 'failed'] },
            attempts: { type: 'integer' },
            startedAt: { type: 'number' },
            finishedAt: { type: 'number' },
            output: {},
            error: { type: 'object' },
          },
        },
        Run: {
          type: 'object',
          required: ['runId', 'pipeline', 'status', 'stages'],
          properties: {
            runId: { type: 'string' },
            pipeline: { type: 'string' },
            version: { type: 'integer' },
            status: { enum: ['running', 'completed', 'failed', 'cancelled', 'unknown'] },
            stages: { type: 'array', items: { $ref: '#/components/schemas/StageState' } },
            outputs: { type: 'object' },
            error: { type: 'object' },
            startedAt: { type: 'string', format: 'date-time' },
            closedAt: { type: 'string', format: 'date-time' },
            links: { type: 'object', properties: { ui: { type: 'string' } } },
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
            { name: 'status', in: 'query', schema: { enum: ['running', 'completed', 'failed', 'cancelled'] } },
            { name: 'pageSize', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } },
            { name: 'cursor', in: 'query', schema: { type: 'string', maxLength: 4096 } },
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
      '/health': { get: { summary: 'Liveness', security: [], responses: { '200': { description: 'Alive' } } } },
      '/ready': {
        get: {
          summary: 'Readiness of Temporal, PostgreSQL and the limiter store',
          security: [],
          responses: { '200': { description: 'Ready' }, ...errors(503) },
        },
      },
      '/metrics': { get: { summary: 'Prometheus metrics', security: [], responses: { '200': { description: 'Metrics', content: { 'text/plain': {} } } } } },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI document' } } } },
    },
  };
}
