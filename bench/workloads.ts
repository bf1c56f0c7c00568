import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { readTickets, type Ticket } from '../src/cli/ticket-input';
import { BARE_TASK_QUEUE, type BareTriageInput } from './bare.workflow';
import { TRIAGE_PIPELINE, type BenchStack } from './bench-stack';
import { startRun } from './facade-client';

const TICKETS = resolve(__dirname, '..', 'src/demo/tickets.csv');

/** The two ways a triage run is started: through the facade, or straight from a Temporal client. */
export type Side = 'facade' | 'bare';

/** The demo's sample tickets, cycled through by every benchmark. */
export function loadTickets(): Ticket[] {
  return readTickets(TICKETS);
}

/** Starts and finishes triage runs on either side; ids are unique per bench run. */
export function triageRuns(bench: BenchStack, tickets: Ticket[]) {
  const tag = randomBytes(3).toString('hex');
  let seq = 0;
  const ticketFor = (i: number) => tickets[i % tickets.length];
  const bareInput = (t: Ticket): BareTriageInput => ({ text: t.text, ticketId: t.ticketId.slice(0, 128), routeTable: bench.route.table, routeDefault: bench.route.default });
  const bareId = () => `${bench.tenant}-bare/${tag}-${seq++}`;
  return {
    /** Starts one run and answers once Temporal has accepted it (the start latency). */
    async start(side: Side, i: number): Promise<string> {
      const t = ticketFor(i);
      if (side === 'facade') return (await startRun(bench, TRIAGE_PIPELINE, { text: t.text, ticketId: t.ticketId.slice(0, 128) })).workflowId;
      const handle = await bench.client.workflow.start('bareTriage', { taskQueue: BARE_TASK_QUEUE, workflowId: bareId(), args: [bareInput(t)] });
      return handle.workflowId;
    },
    /** Starts one run and waits for its result (end to end); a failed run throws. */
    async complete(side: Side, i: number): Promise<void> {
      const workflowId = await this.start(side, i);
      // Completion is observed the same way on both sides: Temporal's long poll for the result.
      await bench.client.workflow.getHandle(workflowId).result();
    },
  };
}
