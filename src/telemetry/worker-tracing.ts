/**
 * The worker's tracing, started as `src/worker.ts`'s first import so that `http` and `pg` are instrumented when they
 * load. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; the Temporal interceptors are installed either way.
 */
import { startProcessTracing } from './tracing';

export const tracing = startProcessTracing('agentry-worker');
