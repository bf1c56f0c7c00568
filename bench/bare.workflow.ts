/**
 * The baseline of the throughput and start-latency benchmarks: the agent stages of `support-triage` (without the
 * `draft` stage) called straight from a workflow, in the same order and with the same activity options as the
 * pipeline interpreter gives them. No definition snapshot, input check, injection screening, audit events,
 * progress query or search attributes: only what any Temporal application calling these agents would do.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';

/** The queue the bench's bare worker polls; nothing else uses it. */
export const BARE_TASK_QUEUE = 'agentry-bench-bare';

export interface BareTriageInput {
  text: string;
  ticketId?: string;
  /** The `route` stage's lookup table and default, taken from the pipeline definition by the bench. */
  routeTable: Record<string, string>;
  routeDefault: string;
}

export interface BareTriageResult {
  label: string;
  team: string;
  reply: string;
}

/** Activity options of one stage, as the pipeline workflow derives them from the definition. */
function agentActivities(timeoutMs: number, maximumAttempts: number, initialInterval: number, maximumInterval: number) {
  return proxyActivities<Pick<Activities, 'runAgent'>>({
    startToCloseTimeout: timeoutMs,
    heartbeatTimeout: Math.min(timeoutMs, 10_000),
    retry: { maximumAttempts, initialInterval, maximumInterval, backoffCoefficient: 2 },
  });
}

export async function bareTriage(args: BareTriageInput): Promise<BareTriageResult> {
  // The same arguments the pipeline workflow passes: workflow ids are `{tenant}/...` here too.
  const { workflowId } = workflowInfo();
  const tenant = workflowId.split('/')[0];
  const call = async <T>(stage: string, agent: string, opts: Parameters<typeof agentActivities>, input: Record<string, unknown>): Promise<T> => {
    const { runAgent } = agentActivities(...opts);
    const res = await runAgent({ workflowId, tenant, runId: workflowId, stage, agent, input });
    return res.output as T;
  };
  const redact = await call<{ text: string }>('redact', 'pii-redact', [10_000, 3, 500, 5_000], { text: args.text });
  const classify = await call<{ label: string; confidence: number }>('classify', 'intent-classifier', [30_000, 3, 1_000, 10_000], { text: redact.text });
  const route = await call<{ value: string }>('route', 'lookup', [5_000, 2, 200, 1_000], {
    key: classify.label,
    default: args.routeDefault,
    table: args.routeTable,
  });
  const reply = await call<{ reply: string }>('reply', 'template-reply', [10_000, 3, 500, 5_000], {
    intent: classify.label,
    team: route.value,
    ...(args.ticketId !== undefined ? { ticketId: args.ticketId } : {}),
  });
  return { label: classify.label, team: route.value, reply: reply.reply };
}
