import { Router, type Request } from 'express';
import type { Client } from '@temporalio/client';
import { progressQuery, type RunProgress, type Transition } from '../contracts';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';
import type { HttpMetrics, Logger } from '../telemetry';
import { AppError, ServiceUnavailableError, ValidationError } from './errors';
import { closedRunState, findRun, isOpen, principalOf, requireRole, runStatusOf, type RunRef } from './run-lookup';

export interface RunEventsOptions {
  /** How often the run's progress is queried. @default 250 @format ms */
  pollMs?: number;
  /** Interval of `: keep-alive` comments, so proxies keep an idle stream open. @default 15000 @format ms */
  keepAliveMs?: number;
  /** A stream ends after this long; the client reconnects with `Last-Event-ID`. @default 3_600_000 (1h) @format ms */
  maxStreamMs?: number;
  /** How often a stream also asks Temporal whether the run has closed (its own state cannot tell a termination). @default 2_000 @format ms */
  describeEveryMs?: number;
  /** Streams one subject may hold open on this replica at once; more answer 429. @default 10 */
  maxStreamsPerSubject?: number;
  /** Streams one tenant may hold open on this replica at once, over all its subjects; more answer 429. @default 200 */
  maxStreamsPerTenant?: number;
  /** Streams this replica holds open at once, over all subjects; more answer 503. @default 1000 */
  maxStreams?: number;
}

export interface RunEventsDeps extends RunEventsOptions {
  temporal: Client;
  pipelines: PipelineCatalog;
  logger: Logger;
  metrics?: Pick<HttpMetrics, 'eventStreams' | 'rateLimited'>;
  /** Aborted when the app stops: open streams end at once instead of holding the shutdown. */
  shutdown: AbortSignal;
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);

function lastEventIdOf(req: Request): number {
  const header = req.header('Last-Event-ID');
  const query = req.query.lastEventId;
  const raw = header ?? (typeof query === 'string' ? query : undefined);
  // The problem names where the value came from: the header, or the query parameter (a browser's EventSource cannot set headers).
  const where = header !== undefined ? 'header:Last-Event-ID' : '/lastEventId';
  if (header === undefined && query !== undefined && typeof query !== 'string') {
    throw new ValidationError('lastEventId must be given once', [{ path: where, message: 'expected a single non-negative integer' }]);
  }
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,15}$/.test(raw.trim())) {
    throw new ValidationError(`${header !== undefined ? 'Last-Event-ID' : 'lastEventId'} must be the seq of a transition`, [{ path: where, message: 'expected a non-negative integer' }]);
  }
  return Number(raw.trim());
}

/**
 * Counts the open streams of this replica, per subject and in all. Every stream queries its run through Temporal
 * (and so a worker) several times a second, so one caller with many tabs or a loop must not multiply that load.
 */
function createStreamQuota(perSubject: number, perTenant: number, total: number, metrics: RunEventsDeps['metrics']) {
  const open = new Map<string, number>();
  const byTenant = new Map<string, number>();
  let all = 0;
  const add = (map: Map<string, number>, key: string, by: number) => {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  };
  return {
    /** Takes a place for a subject of a tenant, or throws 429/503; the returned function gives it back. */
    take(tenant: string, subject: string): () => void {
      const key = `${tenant}\u0000${subject}`;
      const mine = open.get(key) ?? 0;
      if (mine >= perSubject) {
        metrics?.rateLimited.inc({ limit: 'event_streams_per_subject' });
        throw new AppError(
          429,
          'too_many_streams',
          'Too many event streams',
          `this caller already has ${mine} event streams open on this server (at most ${perSubject}); close one first`,
          { limit: 'event_streams_per_subject' },
          { 'Retry-After': '5' },
        );
      }
      if ((byTenant.get(tenant) ?? 0) >= perTenant) {
        metrics?.rateLimited.inc({ limit: 'event_streams_per_tenant' });
        throw new AppError(
          429,
          'too_many_streams',
          'Too many event streams',
          `your tenant already has ${perTenant} event streams open on this server, the most it may have`,
          { limit: 'event_streams_per_tenant' },
          { 'Retry-After': '5' },
        );
      }
      if (all >= total) {
        metrics?.rateLimited.inc({ limit: 'event_streams' });
        throw new ServiceUnavailableError('streams_exhausted', `this server holds its most event streams (${total}); try again shortly`, 5);
      }
      add(open, key, 1);
      add(byTenant, tenant, 1);
      all++;
      metrics?.eventStreams.inc();
      let given = false;
      return () => {
        if (given) return;
        given = true;
        add(open, key, -1);
        add(byTenant, tenant, -1);
        all--;
        metrics?.eventStreams.dec();
      };
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

interface Snapshot {
  transitions: Transition[];
  /** Set once the run has closed: the status to report in the `end` event. */
  closed?: { status: string; temporalStatus: string };
}

/**
 * The run's transitions now. A workflow that reports a final status may still be closing, so Temporal decides
 * whether the run is over; a closed run that can no longer answer queries yields its result or failure details.
 */
async function snapshot(run: RunRef, askTemporal: boolean): Promise<Snapshot> {
  let progress: RunProgress | undefined;
  let queryError: unknown;
  try {
    progress = await run.handle.query(progressQuery);
  } catch (err) {
    queryError = err;
  }
  // A run that reports itself still going may have been closed from outside (terminated, or timed out by Temporal):
  // its replayed state would say "running" for ever, so now and then Temporal is asked as well.
  if (progress && !FINAL.has(progress.status) && !askTemporal) return { transitions: progress.transitions ?? [] };
  const desc = await run.handle.describe();
  if (isOpen(desc)) {
    if (!progress) throw queryError;
    return { transitions: progress.transitions ?? [] };
  }
  let state: Partial<RunProgress> | undefined = progress;
  if (!state) {
    try {
      state = await run.handle.query(progressQuery);
    } catch {
      state = await closedRunState(run.handle);
    }
  }
  return { transitions: state.transitions ?? [], closed: { status: runStatusOf(desc, state), temporalStatus: desc.status.name } };
}

/**
 * `GET /v1/runs/:pipeline/:id/events`: the run's transitions as Server-Sent Events (`id: <seq>`, `event:
 * transition`), in order, resuming after `Last-Event-ID`; `event: end` with the final status once the run has
 * closed and every transition was sent.
 */
export function createRunEventsRoutes(deps: RunEventsDeps): Router {
  const pollMs = deps.pollMs ?? 250;
  const keepAliveMs = deps.keepAliveMs ?? 15_000;
  const maxStreamMs = deps.maxStreamMs ?? 3_600_000;
  const describeEveryMs = deps.describeEveryMs ?? 2_000;
  const quota = createStreamQuota(deps.maxStreamsPerSubject ?? 10, deps.maxStreamsPerTenant ?? 200, deps.maxStreams ?? 1000, deps.metrics);
  const router = Router();

  router.get('/v1/runs/:pipeline/:id/events', async (req, res) => {
    let last = lastEventIdOf(req);
    // The client may be gone already (it hung up while the request was on its way through the middleware, so
    // 'close' fired before anyone listened), or may leave during the lookup: either way nothing must stay open.
    const stop = new AbortController();
    res.once('close', () => stop.abort());
    const gone = () => stop.signal.aborted || res.closed || res.destroyed || req.socket.destroyed;
    if (gone()) {
      res.destroy();
      return;
    }
    // Counted before the run is looked up, so a caller over its share costs no Temporal call.
    const caller = principalOf(req);
    const giveBack = quota.take(caller.tenant, caller.subject);
    stop.signal.addEventListener('abort', giveBack, { once: true });
    let run: RunRef;
    try {
      run = await findRun(deps, req);
      requireRole(run.principal, run.entry?.definition.access.read ?? ['admin', 'auditor'], 'reading a run', run.pipelineName);
    } catch (err) {
      giveBack();
      throw err;
    }
    if (gone()) {
      giveBack();
      res.destroy();
      return;
    }

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();

    const write = (chunk: string) => {
      if (!stop.signal.aborted && !res.writableEnded) res.write(chunk);
    };
    const finish = () => {
      stop.abort();
      if (!res.writableEnded) res.end();
    };
    const onShutdown = () => {
      // Release the connection too, or the server's close would wait for the client to hang up.
      res.once('finish', () => res.socket?.destroy());
      finish();
    };
    deps.shutdown.addEventListener('abort', onShutdown, { once: true });
    const lifetime = setTimeout(finish, maxStreamMs);
    const keepAlive = setInterval(() => write(': keep-alive\n\n'), keepAliveMs);
    if (deps.shutdown.aborted) onShutdown();

    let failures = 0;
    let describedAt = Date.now();
    try {
      while (!stop.signal.aborted) {
        let snap: Snapshot;
        try {
          const askTemporal = Date.now() - describedAt >= describeEveryMs;
          if (askTemporal) describedAt = Date.now();
          snap = await snapshot(run, askTemporal);
          failures = 0;
        } catch (err) {
          // Temporal or the worker may be briefly unreachable; keep the stream and try again, backing off.
          if (failures++ === 0) deps.logger.warn({ runId: run.runId, err: err instanceof Error ? err.message : String(err) }, 'run events: progress unavailable');
          await pause(Math.min(pollMs * 2 ** failures, 5_000), stop.signal);
          continue;
        }
        for (const t of [...snap.transitions].sort((a, b) => a.seq - b.seq)) {
          if (t.seq <= last) continue;
          write(`id: ${t.seq}\nevent: transition\ndata: ${JSON.stringify(t)}\n\n`);
          last = t.seq;
        }
        if (snap.closed) {
          write(`event: end\ndata: ${JSON.stringify({ runId: run.runId, ...snap.closed, lastEventId: last })}\n\n`);
          break;
        }
        await pause(pollMs, stop.signal);
      }
    } finally {
      clearTimeout(lifetime);
      clearInterval(keepAlive);
      deps.shutdown.removeEventListener('abort', onShutdown);
      if (!res.writableEnded) res.end();
      giveBack();
    }
  });

  return router;
}
