import type { BenchStack } from './bench-stack';

/** A facade answer that is not what the bench expected, with the problem's code and detail. */
export class FacadeCallError extends Error {
  override readonly name = 'FacadeCallError';
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(`facade answered ${status}: ${detail}`);
  }
}

async function call(bench: BenchStack, path: string, token: string, body: unknown): Promise<Record<string, unknown>> {
  // The limits are lifted for the bench; a 429 or 503 would still be retried as a client should, after Retry-After.
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${bench.stack.facadeUrl}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.ok) return parsed;
    if ((res.status === 429 || res.status === 503) && attempt < 5) {
      await new Promise((r) => setTimeout(r, Math.min(10, Number(res.headers.get('retry-after') ?? 1)) * 1000));
      continue;
    }
    throw new FacadeCallError(res.status, String(parsed.code ?? parsed.detail ?? 'no problem details'));
  }
}

/** Starts a run through the facade; answers its Temporal workflow id (`{tenant}/{runId}`) and run id. */
export async function startRun(bench: BenchStack, pipeline: string, input: Record<string, unknown>): Promise<{ runId: string; workflowId: string }> {
  const body = await call(bench, `/v1/pipelines/${pipeline}/runs`, bench.operatorToken, { input });
  const runId = String(body.runId);
  return { runId, workflowId: `${bench.tenant}/${runId}` };
}

/** Approves a run's waiting stage through the facade, as the approver subject. */
export async function approve(bench: BenchStack, runId: string, stage: string): Promise<void> {
  await call(bench, `/v1/runs/${runId}/approvals`, bench.approverToken, { stage, decision: 'approve', comment: 'bench' });
}
