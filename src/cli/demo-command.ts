import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Config } from '../config';
import { createBuiltinAgents, readLabelledCsv } from '../agents';
import { loadPipelineCatalog } from '../pipelines/pipeline-catalog';
import { mintToken } from '../facade/auth';
import { StackInterrupted, startStack, type Stack } from './dev-stack';
import { count, noun } from './format';
import { RunEta } from './run-eta';
import { percentile, table } from './stats';
import { checkTickets, InputFileError, readTickets, ticketRunInput, type Ticket } from './ticket-input';
import { PROJECT_CLI } from '../temporal/temporal-cli';
import { onStdoutClosed } from './stdout-closed';

const ROOT = resolve(__dirname, '..', '..');
/** The sample tickets the demo runs when --input is not given. */
export const DEFAULT_INPUT = resolve(ROOT, 'src/demo/tickets.csv');
const PIPELINE = 'support-triage';

export interface DemoOptions {
  input?: string;
  train?: string;
  limit?: number;
  concurrency: number;
  keepRunning: boolean;
  port?: number;
  /** Approve every review at once through the API. */
  autoApprove: boolean;
  /** Seconds a review may wait for a person before the demo approves it itself. */
  reviewWait: number;
}

/** How the demo handles runs that stop at an approval stage. */
interface ReviewPolicy {
  auto: boolean;
  waitMs: number;
  /** A token with the approver role (a different subject than the starter: no self-approval). */
  token: string;
  /** Called once per parked run, to tell a person how to decide it. */
  announce(runId: string, stage: string): void;
  /** Called once per parked run the demo will decide itself at `decideAt` (epoch ms), and once it has. */
  parked?(runId: string, decideAt: number): void;
  decided?(runId: string): void;
}

interface RunOutcome {
  ticket: Ticket;
  runId?: string;
  status: 'completed' | 'failed';
  error?: string;
  stages: { name: string; status: string; startedAt?: number; finishedAt?: number }[];
  outputs: Record<string, unknown>;
  approvals?: { stage: string; decision: string; approver: string }[];
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

async function api<T>(url: string, token: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

/** Starts a run through the facade and polls it to its end. HTTP failures become a failed outcome, not a crash. */
async function runTicket(stack: Stack, token: string, ticket: Ticket, signal: AbortSignal, review: ReviewPolicy, open: Set<string>): Promise<RunOutcome> {
  const input = ticketRunInput(ticket);
  // A well-behaved client: on 429 or 503 wait as long as Retry-After says, then try again.
  let started: { status: number; body: { runId?: string; detail?: string } };
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${stack.facadeUrl}/v1/pipelines/${PIPELINE}/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input }),
      signal,
    });
    started = { status: res.status, body: (await res.json()) as { runId?: string; detail?: string } };
    if ((res.status !== 429 && res.status !== 503) || attempt >= 10) break;
    const wait = Number(res.headers.get('retry-after') ?? '1');
    await new Promise((r) => setTimeout(r, Math.min(30, Number.isFinite(wait) ? wait : 1) * 1000));
  }
  if (!started.body.runId) {
    return { ticket, status: 'failed', error: `start refused (${started.status}): ${started.body.detail}`, stages: [], outputs: {} };
  }
  const runId = started.body.runId;
  open.add(runId);
  let delay = 100;
  let parkedSince: number | undefined;
  let decisionSent = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 1.5, 1000);
    const res = await api<{
      status: string;
      stages?: RunOutcome['stages'];
      outputs?: Record<string, unknown>;
      approvals?: RunOutcome['approvals'];
      error?: { message: string };
    }>(`${stack.facadeUrl}/v1/runs/${runId}`, token, { signal });
    if (res.status === 429 || res.status >= 500) continue;
    if (res.status !== 200) return { ticket, runId, status: 'failed', error: `status read failed (${res.status})`, stages: [], outputs: {} };
    const waiting = res.body.stages?.find((st) => st.status === 'awaiting-approval');
    if (res.body.status === 'awaiting-approval' && waiting && !decisionSent) {
      if (parkedSince === undefined) {
        parkedSince = Date.now();
        if (!review.auto) {
          review.announce(runId, waiting.name);
          review.parked?.(runId, parkedSince + review.waitMs);
        }
      }
      if (review.auto || Date.now() - parkedSince >= review.waitMs) {
        const comment = review.auto ? 'approved by the demo (--auto-approve)' : `approved by the demo after ${review.waitMs / 1000} s without a decision`;
        const decided = await api(`${stack.facadeUrl}/v1/runs/${runId}/approvals`, review.token, {
          method: 'POST',
          body: JSON.stringify({ stage: waiting.name, decision: 'approve', comment }),
          signal,
        });
        // 409: someone decided first, which is fine.
        decisionSent = decided.status === 200 || decided.status === 409;
        if (decisionSent) review.decided?.(runId);
      }
    }
    if (TERMINAL.has(res.body.status)) {
      open.delete(runId);
      return {
        ticket,
        runId,
        status: res.body.status === 'completed' ? 'completed' : 'failed',
        error: res.body.error?.message,
        stages: res.body.stages ?? [],
        outputs: res.body.outputs ?? {},
        approvals: res.body.approvals ?? [],
      };
    }
  }
}

function summarise(outcomes: RunOutcome[], stack: Stack, wallMs: number, out: (l: string) => void): { completed: number; failed: number; accuracy: number | undefined } {
  const completed = outcomes.filter((o) => o.status === 'completed');
  const failed = outcomes.filter((o) => o.status === 'failed');
  out('');
  const rate = outcomes.length / (wallMs / 1000);
  out(`Runs: ${completed.length} completed, ${failed.length} failed in ${(wallMs / 1000).toFixed(1)} s (${rate >= 10 ? rate.toFixed(0) : rate.toPrecision(2)} runs/s)`);
  for (const f of failed.slice(0, 5)) out(`  failed: ${f.runId ?? f.ticket.ticketId}: ${f.error ?? 'unknown error'}`);

  const byStage = new Map<string, number[]>();
  for (const o of completed) {
    for (const s of o.stages) {
      if (s.status !== 'completed' || s.startedAt === undefined || s.finishedAt === undefined) continue;
      byStage.set(s.name, [...(byStage.get(s.name) ?? []), s.finishedAt - s.startedAt]);
    }
  }
  out('');
  out('Stage latency (workflow time, ms; includes scheduling):');
  out(table(['stage', 'runs', 'p50', 'p95'], [...byStage].map(([name, v]) => [name, v.length, percentile(v, 50), percentile(v, 95)])));

  const labelled = completed.filter((o) => o.ticket.category !== undefined);
  let accuracy: number | undefined;
  if (labelled.length > 0) {
    const correct = labelled.filter((o) => (o.outputs.classify as { label?: string } | undefined)?.label === o.ticket.category).length;
    accuracy = correct / labelled.length;
    out('');
    out(`Intent accuracy: ${(accuracy * 100).toFixed(1)}% (${correct}/${labelled.length} labelled ${noun(labelled.length, 'ticket')})`);
  }

  const approvals = new Map<string, number>();
  for (const o of outcomes) {
    for (const a of o.approvals ?? []) approvals.set(`${a.stage}\t${a.decision}\t${a.approver}`, (approvals.get(`${a.stage}\t${a.decision}\t${a.approver}`) ?? 0) + 1);
  }
  out('');
  out('Approvals (reviews of low-confidence classifications):');
  out(approvals.size ? table(['stage', 'decision', 'approver', 'runs'], [...approvals].map(([k, n]) => [...k.split('\t'), n])) : '  none needed');

  const pii = new Map<string, number>();
  for (const o of completed) {
    const counts = (o.outputs.redact as { counts?: Record<string, number> } | undefined)?.counts ?? {};
    for (const [type, n] of Object.entries(counts)) if (n > 0) pii.set(type, (pii.get(type) ?? 0) + n);
  }
  out('');
  out('PII redacted:');
  out(pii.size ? table(['entity', 'count'], [...pii].sort((a, b) => b[1] - a[1])) : '  none found');

  summariseLlm(completed, stack, out);

  const sample = completed[0] ?? outcomes[0];
  if (sample?.runId) {
    const reply = (sample.outputs.reply as { reply?: string } | undefined)?.reply;
    if (reply) out(`\nA reply (${sample.runId}):\n  ${reply.replace(/\n/g, '\n  ')}`);
    out(`\nOpen a run in the Temporal Web UI: ${stack.uiUrl}/namespaces/default/workflows/${encodeURIComponent(`demo/${sample.runId}`)}`);
  }
  return { completed: completed.length, failed: failed.length, accuracy };
}

interface LlmStageOutput {
  text: string;
  model: string;
  usage: { promptTokens: number; completionTokens: number; costUsd: number; calls: number };
}

function isLlmOutput(value: unknown): value is LlmStageOutput {
  const v = value as Partial<LlmStageOutput> | undefined;
  return typeof v?.text === 'string' && typeof v.usage?.promptTokens === 'number' && typeof v.usage.costUsd === 'number';
}

/** Spend of every `llm` stage (the `draft` stage of support-triage), and a few of the drafted replies. */
function summariseLlm(completed: RunOutcome[], stack: Stack, out: (l: string) => void): void {
  const byStage = new Map<string, { runs: number; calls: number; prompt: number; completion: number; cost: number; model: string }>();
  for (const o of completed) {
    for (const [stage, value] of Object.entries(o.outputs)) {
      if (!isLlmOutput(value)) continue;
      const t = byStage.get(stage) ?? { runs: 0, calls: 0, prompt: 0, completion: 0, cost: 0, model: value.model };
      t.runs++;
      t.calls += value.usage.calls;
      t.prompt += value.usage.promptTokens;
      t.completion += value.usage.completionTokens;
      t.cost += value.usage.costUsd;
      byStage.set(stage, t);
    }
  }
  out('');
  out(`LLM spend (${stack.llm.local ? `local model ${stack.llm.model}, served on loopback` : `${stack.llm.model} at ${stack.llm.baseUrl}`}):`);
  if (byStage.size === 0) {
    out('  no llm stage completed');
    return;
  }
  out(
    table(
      ['stage', 'runs', 'calls', 'prompt tokens', 'completion tokens', 'tokens/run', 'cost USD'],
      [...byStage].map(([stage, t]) => [stage, t.runs, t.calls, t.prompt, t.completion, Math.round((t.prompt + t.completion) / t.runs), t.cost.toFixed(6)]),
    ),
  );
  const drafts = completed.filter((o) => isLlmOutput(o.outputs.draft)).slice(0, 3);
  if (drafts.length > 0) {
    out('');
    out('Drafted replies (the ticket as the model saw it, after redaction):');
    for (const o of drafts) for (const line of draftedReplyLines(o.outputs)) out(line);
  }
}

/**
 * One drafted reply as the summary shows it: the ticket's redacted text (the `redact` stage output, what the model
 * was given) and the draft. Takes the run's outputs only, never the ticket: the original text holds the PII that
 * `redact` removed, and the summary is printed to a terminal and often pasted on.
 */
export function draftedReplyLines(outputs: Record<string, unknown>): string[] {
  const redacted = (outputs.redact as { text?: unknown } | undefined)?.text;
  const draft = outputs.draft as LlmStageOutput;
  const oneLine = (text: string) => text.trim().replace(/\s+/g, ' ');
  const ticket = typeof redacted === 'string' ? oneLine(redacted) : '(no redacted text in the run\'s outputs)';
  return [`  ticket: ${ticket.length > 90 ? `${ticket.slice(0, 87)}...` : ticket}`, `  draft:  ${oneLine(draft.text)}`, ''];
}

export async function runDemo(config: Config, opts: DemoOptions, out: (l: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const inputFile = opts.input ?? DEFAULT_INPUT;
  const tickets = readTickets(inputFile, opts.limit);
  // Check the training file before starting anything: a mistake here should not cost a stack start-up.
  if (opts.train) await readLabelledCsv(resolve(opts.train));
  if (tickets.length === 0) throw new Error(`${inputFile}: no tickets to run`);
  // Every ticket is checked against the pipeline's input schema, as the facade will check it, before anything
  // starts: a bad row should name its line now, not surface as a refused start halfway through the run.
  const agents = createBuiltinAgents({ trainFile: resolve(opts.train ?? config.CLASSIFIER_TRAIN_FILE), cacheDir: config.modelCacheDir });
  const pipeline = (await loadPipelineCatalog(config.PIPELINES_DIR, agents)).get(PIPELINE);
  if (!pipeline) throw new Error(`${config.PIPELINES_DIR}: no "${PIPELINE}" pipeline definition (PIPELINES_DIR)`);
  const problems = checkTickets(inputFile, tickets, pipeline);
  if (problems.length > 0) {
    throw new InputFileError(problems, `${inputFile}: ${count(problems.length, 'ticket problem')} against the "${PIPELINE}" input schema; nothing was started:`);
  }
  out(`agentry demo: ${count(tickets.length, 'ticket')} from ${inputFile} through "${PIPELINE}", ${opts.concurrency} at a time`);

  // The demo is one subject of one tenant sending a burst (and polling) through its own stack: the per-subject and
  // per-tenant limits are lifted.
  const env: Record<string, string> = { RATE_LIMIT_PER_MINUTE: '100000', TENANT_RATE_LIMIT_PER_MINUTE: '100000' };
  if (opts.train) env.CLASSIFIER_TRAIN_FILE = resolve(opts.train);
  // Ctrl-C reaches only this process (the stack's children run in process groups of their own): it aborts the
  // runs, and the stack is stopped in order. The handler stays until the stack is down, so a second Ctrl-C does not
  // end the demo halfway through stopping it and leave a Temporal server behind.
  const abort = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    abort.abort();
  };
  // A closed terminal (SIGHUP) stops the stack too; writes to that terminal fail from then on, which cli.ts ignores.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, onSigint);
  // Output piped into a reader that leaves (`| head`) ends the demo the same way, stack stopped first.
  onStdoutClosed(onSigint);
  const unhook = () => {
    for (const s of signals) process.off(s, onSigint);
    onStdoutClosed(undefined);
  };
  let stack: Stack;
  try {
    stack = await startStack({ config, log: (l) => out(`  ${l}`), env, facadePort: opts.port, signal: abort.signal });
  } catch (err) {
    unhook();
    if (!(err instanceof StackInterrupted)) throw err;
    // stderr, like the other ways the demo ends early: stdout carries only the demo's results.
    process.stderr.write('interrupted while starting: what had started is stopped\n');
    return 130;
  }
  try {
    // A day, or less when the facade (same configuration) accepts only shorter tokens.
    const tokenTtlS = Math.min(24 * 3600, config.JWT_MAX_TOKEN_LIFETIME_S);
    const token = await mintToken({
      secret: stack.jwtSecret,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      subject: 'demo-operator',
      tenant: 'demo',
      roles: ['operator', 'viewer'],
      ttlS: tokenTtlS,
      maxLifetimeS: config.JWT_MAX_TOKEN_LIFETIME_S,
    });
    const reviewerToken = await mintToken({
      secret: stack.jwtSecret,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      subject: 'demo-reviewer',
      tenant: 'demo',
      roles: ['approver'],
      ttlS: tokenTtlS,
      maxLifetimeS: config.JWT_MAX_TOKEN_LIFETIME_S,
    });
    // The printed command carries a token of its own, so a person's decision is not listed as the demo's.
    const personToken = await mintToken({
      secret: stack.jwtSecret,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      subject: 'you',
      tenant: 'demo',
      roles: ['approver'],
      ttlS: tokenTtlS,
      maxLifetimeS: config.JWT_MAX_TOKEN_LIFETIME_S,
    });
    let announced = 0;
    const review: ReviewPolicy = {
      auto: opts.autoApprove,
      waitMs: opts.reviewWait * 1000,
      token: reviewerToken,
      announce(runId, stage) {
        announced++;
        if (announced > 1) return;
        const temporal = existsSync(PROJECT_CLI) ? PROJECT_CLI : 'temporal';
        process.stderr.write(
          [
            '',
            `Run ${runId} waits for a person to review it (stage "${stage}"). Approve it over HTTP:`,
            `  curl -X POST ${stack.facadeUrl}/v1/runs/${runId}/approvals -H 'content-type: application/json' \\`,
            `    -H 'Authorization: Bearer ${personToken}' \\`,
            `    -d '{"stage":"${stage}","decision":"approve","comment":"looks right"}'`,
            'or with the Temporal CLI:',
            `  ${temporal} workflow signal --address ${stack.temporalAddress} --workflow-id 'demo/${runId}' --name approve \\`,
            `    --input '{"stage":"${stage}","decision":"approve","approver":{"subject":"you","roles":["approver"]}}'`,
            `Reviews still waiting after ${opts.reviewWait} s are approved by the demo (--review-wait N; --auto-approve approves at once).`,
            '',
          ].join('\n'),
        );
      },
    };
    out(`  Stack ready: facade ${stack.facadeUrl}, Temporal ${stack.temporalAddress}, Web UI ${stack.uiUrl}`);
    out('');
    const bar = new SingleBar({
      // The bar's own ETA is computed only when a run finishes and printed rounded to 5 s (as `23m60s`): the
      // estimate comes from RunEta instead, refreshed every second.
      format: 'runs [{bar}] {value}/{total} | ok {ok} | failed {failed} | {estimate}',
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 5000,
      stream: process.stderr,
    });
    const eta = new RunEta(tickets.length, Date.now());
    review.parked = (runId, decideAt) => eta.reviewWaiting(runId, decideAt);
    review.decided = (runId) => eta.reviewDecided(runId);
    bar.start(tickets.length, 0, { ok: 0, failed: 0, estimate: eta.text(Date.now()) });
    const refresh = setInterval(() => bar.update({ estimate: eta.text(Date.now()) }), 1000);
    const outcomes: RunOutcome[] = [];
    /** Runs started and not yet seen to end: an interrupted demo cancels them rather than leave them parked. */
    const openRuns = new Set<string>();
    let next = 0;
    const t0 = performance.now();
    const workerLoop = async () => {
      while (next < tickets.length && !abort.signal.aborted) {
        const ticket = tickets[next++];
        const outcome = await runTicket(stack, token, ticket, abort.signal, review, openRuns).catch(
          (err): RunOutcome => ({ ticket, status: 'failed', error: (err as Error).message, stages: [], outputs: {} }),
        );
        if (abort.signal.aborted) return;
        outcomes.push(outcome);
        eta.finished(Date.now(), outcome.runId);
        const ok = outcomes.filter((o) => o.status === 'completed').length;
        bar.increment(1, { ok, failed: outcomes.length - ok, estimate: eta.text(Date.now()) });
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(opts.concurrency, tickets.length) }, workerLoop));
    } finally {
      clearInterval(refresh);
      bar.stop();
    }
    if (interrupted) {
      if (openRuns.size > 0) {
        // Through the API, as any operator would: each run compensates and its audit trail names why it ended.
        const cancelled = await Promise.allSettled(
          [...openRuns].map((runId) =>
            api(`${stack.facadeUrl}/v1/runs/${runId}/cancel`, token, {
              method: 'POST',
              body: JSON.stringify({ reason: 'the demo that started it was interrupted' }),
              signal: AbortSignal.timeout(10_000),
            }),
          ),
        );
        const done = cancelled.filter((r) => r.status === 'fulfilled' && (r.value.status === 202 || r.value.status === 409)).length;
        process.stderr.write(`interrupted: cancelled ${count(done, 'unfinished run')} of ${openRuns.size}\n`);
      }
      process.stderr.write('interrupted: stopping the stack\n');
      return 130;
    }
    const s = summarise(outcomes, stack, performance.now() - t0, out);
    if (opts.keepRunning) {
      out('');
      out(`The stack keeps running (Ctrl-C stops it). Facade ${stack.facadeUrl}, Web UI ${stack.uiUrl}.`);
      out('A token for the "demo" tenant, and the audit database:');
      out(`  export TOKEN=${token}`);
      out(`  export DATABASE_URL=${stack.databaseUrl}`);
      out(`  curl -H "Authorization: Bearer $TOKEN" ${stack.facadeUrl}/v1/runs`);
      out('  npm run -s agentry -- audit verify');
      out(`SUMMARY completed=${s.completed} failed=${s.failed} accuracy=${s.accuracy === undefined ? 'na' : s.accuracy.toFixed(4)}`);
      if (!abort.signal.aborted) await new Promise<void>((r) => abort.signal.addEventListener('abort', () => r()));
      // Ctrl-C is how a kept stack is meant to end: say so on stderr, so SUMMARY stays the last line of stdout.
      process.stderr.write('stopping the stack\n');
      return s.failed > 0 ? 1 : 0;
    }
    out(`SUMMARY completed=${s.completed} failed=${s.failed} accuracy=${s.accuracy === undefined ? 'na' : s.accuracy.toFixed(4)}`);
    return s.failed > 0 ? 1 : 0;
  } finally {
    await stack.stop();
    unhook();
  }
}
