import type { IncomingMessage } from 'node:http';
import { trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { Resource } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ClientInterceptors } from '@temporalio/client';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  makeWorkflowExporter,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkerOptions } from '@temporalio/worker';
import type { RequestHandler } from 'express';
import { loadConfig } from '../config';

/**
 * The workflow interceptor module, bundled with the workflow code of every worker and replayer. It is installed
 * whether or not spans are exported: it decides what the workflow sandbox does, so its presence must never depend on
 * configuration.
 */
export const WORKFLOW_TRACING_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** Request paths that probes and scrapers call all day: no trace of their own. */
const UNTRACED_PATHS = new Set(['/metrics', '/health', '/ready']);

export interface TracingOptions {
  /** `service.name` of the process, such as `agentry-facade`. */
  serviceName: string;
  /**
   * OTLP/HTTP base address of the collector (OTEL_EXPORTER_OTLP_ENDPOINT); spans go to `{endpoint}/v1/traces`.
   * @default unset: nothing is exported and no instrumentation is installed
   */
  otlpEndpoint?: string;
  /** Encoding of exported spans (OTEL_EXPORTER_OTLP_PROTOCOL). @default http/protobuf */
  otlpProtocol?: 'http/protobuf' | 'http/json';
  /** Further processors, such as one feeding an in-memory exporter; they switch tracing on like an endpoint does. @default none */
  spanProcessors?: SpanProcessor[];
}

export interface Tracing {
  /** Whether spans are recorded and exported. */
  readonly enabled: boolean;
  /** Receives the spans that workflow code records inside the sandbox (the worker's `exporter` sink). */
  readonly workflowSpans: SpanProcessor;
  /** Resource (service name and host facts) the workflow spans are reported with. */
  readonly resource: Resource;
  /** Exports the spans still buffered and stops tracing. Safe to call more than once. */
  shutdown(): Promise<void>;
}

/** Spans that workflow code ends are handed to every processor of the process, as the SDK does with its own. */
function fanOut(processors: SpanProcessor[]): SpanProcessor {
  if (processors.length === 0) return new NoopSpanProcessor();
  return {
    onStart: (span, context) => processors.forEach((p) => p.onStart(span, context)),
    onEnd: (span) => processors.forEach((p) => p.onEnd(span)),
    forceFlush: () => Promise.all(processors.map((p) => p.forceFlush())).then(() => undefined),
    shutdown: () => Promise.all(processors.map((p) => p.shutdown())).then(() => undefined),
  };
}

/**
 * Starts OpenTelemetry for this process: W3C trace context in and out, spans for incoming and outgoing HTTP
 * requests and for PostgreSQL queries, exported over OTLP/HTTP (protobuf or JSON). With neither an endpoint nor a
 * processor it does nothing at all, so tracing that is off costs no instrumentation.
 *
 * Must run before `http` and `pg` are loaded: the instrumentations patch those modules as they load. Each process
 * does that in its preload module (`facade-tracing.ts`, `worker-tracing.ts`), its entry file's first import. Express
 * itself is not instrumented (the 1.x instrumentation predates Express 5): `routeSpanNames` names the server spans.
 */
export function startTracing(opts: TracingOptions): Tracing {
  const resource = new Resource({ 'service.name': opts.serviceName });
  const processors = [...(opts.spanProcessors ?? [])];
  if (opts.otlpEndpoint) {
    const url = `${opts.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    const exporter = opts.otlpProtocol === 'http/json' ? new OtlpJsonExporter({ url }) : new OtlpProtobufExporter({ url });
    processors.push(new BatchSpanProcessor(exporter));
  }
  if (processors.length === 0) {
    return { enabled: false, workflowSpans: new NoopSpanProcessor(), resource, shutdown: async () => undefined };
  }
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    spanProcessors: processors,
    textMapPropagator: new W3CTraceContextPropagator(),
    // Traces only: logs stay pino lines on stdout, metrics stay Prometheus.
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req: IncomingMessage) => UNTRACED_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
      }),
      // Queries are traced inside a request or an activity only (not pool housekeeping); their parameters never
      // leave the process, as they carry customer data.
      new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
    ],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    // The processors the SDK exports through; shut down with it.
    workflowSpans: fanOut(processors),
    resource,
    shutdown: () => (stopped ??= sdk.shutdown()),
  };
}

/**
 * Tracing as configured for a process entry point: on when OTEL_EXPORTER_OTLP_ENDPOINT is set, in the encoding of
 * OTEL_EXPORTER_OTLP_PROTOCOL. Bad configuration leaves tracing off here; the process's own `loadConfig()` reports it
 * and refuses to start.
 */
export function startProcessTracing(serviceName: string): Tracing {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch {
    return startTracing({ serviceName });
  }
  return startTracing({ serviceName, otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, otlpProtocol: config.OTEL_EXPORTER_OTLP_PROTOCOL });
}

/** Client interceptors that start each workflow inside a span and pass its context to the run in headers. */
export function clientTracingInterceptors(): ClientInterceptors {
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/**
 * The tracing part of a worker's options: the workflow interceptor module (bundled from `workflowsPath`), the
 * activity interceptors (a span per attempt, trace ids in the SDK's activity log attributes) and the sink that
 * carries workflow spans out of the sandbox. Identical whether tracing is on or off; only the sink's processor differs.
 */
export function workerTracingOptions(tracing: Tracing): Required<Pick<WorkerOptions, 'interceptors' | 'sinks'>> {
  return {
    interceptors: {
      workflowModules: [WORKFLOW_TRACING_INTERCEPTORS],
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.workflowSpans, tracing.resource) },
  };
}

/**
 * Names each request's server span after its route template (`POST /v1/runs/:pipeline/:id`, attribute `http.route`)
 * instead of the bare method, never the raw path. Set when the response has finished, before the span ends (on close).
 */
export function routeSpanNames(): RequestHandler {
  return (req, res, next) => {
    const span = trace.getActiveSpan();
    if (span?.isRecording()) {
      res.once('finish', () => {
        if (!req.route?.path) return;
        const route = `${req.baseUrl}${String(req.route.path)}`;
        span.setAttribute('http.route', route);
        span.updateName(`${req.method} ${route}`);
      });
    }
    next();
  };
}
