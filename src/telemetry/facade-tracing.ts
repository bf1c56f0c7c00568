/**
 * The facade's tracing, started as `src/server.ts`'s first import so that `http` and `pg` are instrumented
 * when they load. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
import { startProcessTracing } from './tracing';

export const tracing = startProcessTracing('agentry-facade');
