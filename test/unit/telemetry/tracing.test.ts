import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { loadConfig } from '../../../src/config';
import { createLogger, startTracing, workerTracingOptions, WORKFLOW_TRACING_INTERCEPTORS } from '../../../src/telemetry';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level: 'info', name: 'tracing-test', destination });
  return { logger, lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('with neither an endpoint nor a processor, tracing is off: no SDK, no trace ids in logs, same worker interceptors', async () => {
  const tracing = startTracing({ serviceName: 'agentry-test' });
  expect(tracing.enabled).toBe(false);
  const { logger, lines } = capture();
  trace.getTracer('test').startActiveSpan('unrecorded', (span) => {
    logger.info('inside');
    span.end();
  });
  expect(lines()[0]).not.toHaveProperty('trace_id');
  // The workflow interceptor module is installed either way: replay must not depend on configuration.
  const options = workerTracingOptions(tracing);
  expect(options.interceptors.workflowModules).toEqual([WORKFLOW_TRACING_INTERCEPTORS]);
  expect(options.interceptors.activity).toHaveLength(1);
  expect(Object.keys(options.sinks)).toEqual(['exporter']);
  await tracing.shutdown();
});

test('with an in-memory exporter, spans are recorded under the service name and log lines carry their trace and span ids', async () => {
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({ serviceName: 'agentry-test', spanProcessors: [new SimpleSpanProcessor(exporter)] });
  expect(tracing.enabled).toBe(true);
  const { logger, lines } = capture();
  const ids = trace.getTracer('test').startActiveSpan('work', (span) => {
    logger.info({ runId: 'p/1', stage: 'redact' }, 'inside');
    span.end();
    return span.spanContext();
  });
  logger.info('outside');
  const [inside, outside] = lines();
  expect(inside).toMatchObject({ runId: 'p/1', stage: 'redact', trace_id: ids.traceId, span_id: ids.spanId });
  expect(outside).not.toHaveProperty('trace_id');
  // Resource detection (host, process) finishes asynchronously; the export waits for it.
  await tracing.workflowSpans.forceFlush();
  const spans = exporter.getFinishedSpans();
  expect(spans.map((s) => s.name)).toEqual(['work']);
  expect(spans[0]?.resource.attributes['service.name']).toBe('agentry-test');
  await tracing.shutdown();
  await tracing.shutdown();
});

test('OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL and the protocol one of the two OTLP/HTTP encodings', () => {
  expect(loadConfig({}).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  expect(loadConfig({}).OTEL_EXPORTER_OTLP_PROTOCOL).toBe('http/protobuf');
  expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' }).OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://jaeger:4318');
  expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'jaeger:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT: expected an http/);
  expect(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: expected http\/protobuf or http\/json/);
});
