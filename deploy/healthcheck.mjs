// Container health probe (Dockerfile HEALTHCHECK): GET /health of the facade (PORT) or of the worker's metrics
// server (WORKER_METRICS_PORT) on loopback. Exits 0 when it answers 2xx within 3 seconds.
/* global fetch, AbortSignal -- Node 20 globals */
const kind = process.argv[2] === 'worker' ? 'worker' : 'facade';
const port = kind === 'worker' ? process.env.WORKER_METRICS_PORT || '9464' : process.env.PORT || '3000';

try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
