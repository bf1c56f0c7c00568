/**
 * `npm run bench`: the throughput, start-latency, parked-run and audit benchmarks on the project's own stack.
 * Prints the tables at the end and writes every figure as JSON (and the tables as Markdown beside it).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { auditBench } from './audit.bench';
import { startBenchStack, type BenchStack } from './bench-stack';
import { machineInfo } from './measure';
import { parkedBench } from './parked.bench';
import { renderMarkdown, renderText, type BenchResults } from './report';
import { startBench } from './start.bench';
import { throughputBench } from './throughput.bench';

const BENCHMARKS = ['throughput', 'start', 'parked', 'audit'] as const;
type Benchmark = (typeof BENCHMARKS)[number];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function benchmarkList(value: string): Benchmark[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(BENCHMARKS as readonly string[]).includes(n));
  if (unknown.length || names.length === 0) throw new InvalidArgumentError(`expected a comma list of ${BENCHMARKS.join(', ')}`);
  return names as Benchmark[];
}

interface BenchOptions {
  only: Benchmark[];
  runs: number;
  concurrency: number;
  rounds: number;
  rate: number;
  startRequests: number;
  parked: number;
  auditEvents: number;
  auditTenants: number;
  out: string;
  quick: boolean;
  from?: string;
}

/** Sizes of `--quick`: a smoke check of every benchmark in a couple of minutes, not figures to quote. */
const QUICK: Partial<BenchOptions> = { runs: 40, rounds: 2, startRequests: 40, parked: 100, auditEvents: 500 };

async function main(): Promise<number> {
  const program = new Command('bench')
    .description('Benchmarks of agentry on its own one-machine stack (Temporal dev server, PostgreSQL, worker, facade).')
    .addOption(new Option('--only <list>', `benchmarks to run, comma-separated: ${BENCHMARKS.join(',')}`).argParser(benchmarkList).default([...BENCHMARKS]))
    .option('-n, --runs <n>', 'throughput: runs per side', positiveInt, 400)
    .option('-c, --concurrency <n>', 'runs (or requests, or audit writers) in flight at once', positiveInt, 16)
    .option('--rounds <n>', 'throughput and start latency: alternating rounds per side', positiveInt, 2)
    .option('--rate <n>', 'start latency: starts per second', positiveInt, 20)
    .option('--start-requests <n>', 'start latency: starts per side', positiveInt, 300)
    .option('--parked <n>', 'parked runs: runs waiting for approval', positiveInt, 2000)
    .option('--audit-events <n>', 'audit: appends per measurement', positiveInt, 5000)
    .option('--audit-tenants <n>', 'audit: tenants written concurrently in the several-tenants row', positiveInt, 8)
    .option('--out <file>', 'JSON results (the Markdown tables go beside it)', 'bench/results/latest.json')
    .option('--quick', 'small sizes for a smoke check (overrides the sizes above)', false)
    .option('--from <file>', 'measure nothing: print the tables of an earlier results file')
    .showHelpAfterError();
  program.parse();
  const parsed = program.opts<BenchOptions>();
  if (parsed.from) {
    const earlier = JSON.parse(readFileSync(resolve(parsed.from), 'utf8')) as BenchResults;
    process.stdout.write(`${renderText(earlier)}\n`);
    return 0;
  }
  const opts: BenchOptions = parsed.quick ? { ...parsed, ...QUICK } : parsed;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const startedAt = new Date();
  const results: BenchResults = {
    startedAt: startedAt.toISOString(),
    durationS: 0,
    machine: machineInfo(),
    options: { ...opts },
  };
  log(`agentry bench: ${opts.only.join(', ')} on ${results.machine.cores} × ${results.machine.cpuModel}, load ${results.machine.loadAverage.join(' ')}`);

  const out = resolve(opts.out);
  const mdFile = out.replace(/\.json$/, '') + '.md';
  mkdirSync(dirname(out), { recursive: true });
  // Written after every benchmark, so a long run that is interrupted keeps what it measured.
  const save = () => {
    results.durationS = Math.round((Date.now() - startedAt.getTime()) / 1000);
    results.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(mdFile, `${renderMarkdown(results)}\n`);
  };
  // First, while nothing else of the bench runs: the audit figures are of PostgreSQL alone.
  if (opts.only.includes('audit')) {
    results.audit = await auditBench({ events: opts.auditEvents, concurrency: opts.concurrency, tenants: opts.auditTenants });
    save();
  }

  const needsStack = opts.only.some((b) => b !== 'audit');
  let bench: BenchStack | undefined;
  const interrupt = () => {
    log('interrupted: stopping the bench stack');
    void (bench?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    if (needsStack) {
      bench = await startBenchStack((l) => log(`  ${l}`));
      results.stack = { temporal: bench.stack.temporalAddress, redis: bench.stack.redis, postgres: 'temporary database (TEST_DATABASE_URL server)' };
    }
    if (bench && opts.only.includes('throughput')) {
      results.throughput = await throughputBench(bench, opts);
      save();
    }
    if (bench && opts.only.includes('start')) {
      results.start = await startBench(bench, { ratePerS: opts.rate, requests: opts.startRequests, rounds: opts.rounds });
      save();
    }
    if (bench && opts.only.includes('parked')) {
      results.parked = await parkedBench(bench, { runs: opts.parked, concurrency: opts.concurrency });
      save();
    }
  } finally {
    await bench?.stop();
  }
  save();
  process.stdout.write(`\n${renderText(results)}\n\nResults: ${out} (tables as Markdown: ${mdFile}); ${results.durationS} s in all.\n`);
  const failed = (results.throughput?.facade.failures ?? 0) + (results.throughput?.bare.failures ?? 0) + (results.parked?.startFailures ?? 0) + (results.parked?.approveFailures ?? 0);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`agentry bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
