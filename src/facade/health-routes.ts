import { Router } from 'express';
import type { Registry } from 'prom-client';

/** One readiness check's answer; an `advisory` one is reported but does not fail /ready. */
export type CheckResult = { ok: boolean; detail?: string; mode?: string; advisory?: boolean };
/** A readiness check; marked `advisory` (see `advisory()`), whatever it answers, throws or fails to answer in time is reported only. */
export type ReadinessCheck = (() => Promise<CheckResult>) & { readonly advisory?: boolean };

/** The check, reported in /ready's body but never failing it. */
export function advisory(check: () => Promise<CheckResult>): ReadinessCheck {
  return Object.assign(() => check(), { advisory: true });
}

/** Runs a check with a deadline, so one hung dependency cannot hang the probe. */
async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  const result = await runWithDeadline(check, timeoutMs);
  return check.advisory ? { ...result, advisory: true } : result;
}

async function runWithDeadline(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check(),
      new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
      }),
    ]);
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** `/health` (the process is alive), `/ready` (its dependencies answer) and `/metrics`. */
export function createHealthRoutes(deps: { checks: Record<string, ReadinessCheck>; registry: Registry; isDraining: () => boolean }): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/ready', async (_req, res) => {
    const names = Object.keys(deps.checks);
    const results = await Promise.all(names.map((n) => runCheck(deps.checks[n], 2000)));
    const checks = Object.fromEntries(names.map((n, i) => [n, results[i]]));
    const draining = deps.isDraining();
    if (!draining && results.every((r) => r.ok || r.advisory)) {
      res.json({ status: 'ready', checks });
      return;
    }
    const failing = names.filter((_, i) => !results[i].ok && !results[i].advisory);
    res
      .status(503)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: 'urn:agentry:problem:not_ready',
          title: 'Not ready',
          status: 503,
          code: draining ? 'draining' : 'not_ready',
          detail: draining ? 'the process is shutting down' : `failing checks: ${failing.join(', ')}`,
          checks,
        }),
      );
  });
  router.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  return router;
}
