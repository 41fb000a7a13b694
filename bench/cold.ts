/**
 * Cold-start cost of each Lambda bundle: bundles every handler with esbuild exactly as the CDK
 * app does (infra/bundling/options.ts), then imports each bundle in a fresh Node process and
 * times the import (module evaluation + the handler's cold-start code: config, clients,
 * parser WASM). Baseline: importing an empty module the same way, in the same run.
 *
 *   npm run bench:cold            # 7 runs per handler
 *   RUNS=11 npm run bench:cold
 *
 * Nothing is dialled: pools and Redis connect lazily. Lambda adds the runtime's own start-up
 * and runs ARM64 at the configured memory, so absolute numbers differ there; the ratios and the
 * sizes carry over. The last line is one JSON object.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { esbuildOptionsFor, MAX_BUNDLE_BYTES } from '../infra/bundling/options.ts';
import { FUNCTION_NAMES } from '../infra/dbopt-stack.ts';
import { functionEntry, LIBPG_QUERY_WASM_PATH } from '../infra/paths.ts';
import { median } from './support.ts';

const RUNS = Math.max(5, Number(process.env.RUNS ?? 7));
const TARGET_INIT_MS = 300;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** The environment shape the stack gives the functions (endpoints are stand-ins). */
const LAMBDA_ENV: Record<string, string> = {
  AWS_REGION: 'us-east-1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  NODE_OPTIONS: '--enable-source-maps',
  METRICS_NAMESPACE: 'dbopt',
  DB_HOST: 'proxy.invalid',
  DB_PORT: '5432',
  DB_NAME: 'postgres',
  DB_USER: 'dbopt_bench',
  DB_IAM_AUTH: 'true',
  DB_SSL_MODE: 'verify-full',
  REDIS_URL: 'rediss://:token@cache.invalid:6379',
  ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:alerts',
  SLOW_QUERY_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/slow',
  POWERTOOLS_METRICS_DISABLED: 'true',
};

interface ImportTiming {
  /** Wall-clock milliseconds of the import. */
  readonly ms: number;
  /** CPU milliseconds (user + system, all threads) of the import: less sensitive to a busy machine. */
  readonly cpuMs: number;
}

/** Times `import()` of the module at `file` in a fresh Node process. */
const timeImport = (file: string, serviceName: string): ImportTiming => {
  const script = `const c0 = process.cpuUsage();
    const t0 = performance.now();
    const m = await import(${JSON.stringify(pathToFileURL(file).href)});
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (m.handler !== undefined && typeof m.handler !== 'function') throw new Error('bad handler');
    process.stdout.write(JSON.stringify({ ms, cpuMs: (c.user + c.system) / 1000 }));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...LAMBDA_ENV, SERVICE_NAME: serviceName },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.status !== 0) {
    throw new Error(`import of ${file} failed:\n${result.stderr}`);
  }
  return JSON.parse(result.stdout) as ImportTiming;
};

const main = async (): Promise<void> => {
  const dir = mkdtempSync(join(tmpdir(), 'dbopt-bench-cold-'));
  const empty = join(dir, 'empty.mjs');
  writeFileSync(empty, 'export {};\n');

  const bundles: { name: string; file: string; bundleBytes: number; wasm: boolean }[] = [];
  for (const name of FUNCTION_NAMES) {
    const outDir = join(dir, name);
    mkdirSync(outDir);
    const file = join(outDir, 'index.mjs');
    await build(esbuildOptionsFor(functionEntry(name), file));
    // Same rule as the CDK after-bundling hook: the parser's WASM goes next to the bundle.
    const wasm = readFileSync(file, 'utf8').includes('libpg-query.wasm');
    if (wasm) copyFileSync(LIBPG_QUERY_WASM_PATH, join(outDir, 'libpg-query.wasm'));
    bundles.push({ name, file, bundleBytes: statSync(file).size, wasm });
  }

  // Interleave runs (baseline, each handler, repeat) so machine noise spreads evenly.
  const samples = new Map<string, ImportTiming[]>([['(empty module)', []]]);
  for (const b of bundles) samples.set(b.name, []);
  for (let run = 0; run < RUNS; run += 1) {
    samples.get('(empty module)')?.push(timeImport(empty, 'bench'));
    for (const b of bundles) samples.get(b.name)?.push(timeImport(b.file, `dbopt-${b.name}`));
  }

  const baselineMs = median((samples.get('(empty module)') ?? []).map((t) => t.ms));
  console.log(`cold start: import of each bundle in a fresh node ${process.version} process`);
  // Shared machines inflate every number alike; the load says how much to trust them.
  const [load1m = 0] = loadavg();
  console.log(
    `median of ${RUNS} runs; baseline (empty module) ${round1(baselineMs)} ms; ` +
      `load average ${load1m.toFixed(1)} on ${cpus().length} CPUs\n`,
  );
  console.log(
    'handler                bundle KB  wasm   init ms (median)  min–max ms    × baseline  CPU ms (median)',
  );
  const handlers: Record<string, { bundle_bytes: number; init_ms: number; init_cpu_ms: number }> =
    {};
  for (const b of bundles) {
    const timings = samples.get(b.name) ?? [];
    const xs = timings.map((t) => t.ms);
    const initMs = median(xs);
    const cpuMs = median(timings.map((t) => t.cpuMs));
    handlers[b.name] = {
      bundle_bytes: b.bundleBytes,
      init_ms: round1(initMs),
      init_cpu_ms: round1(cpuMs),
    };
    const range = `${round1(Math.min(...xs))}–${round1(Math.max(...xs))}`;
    console.log(
      `${b.name.padEnd(22)} ${(b.bundleBytes / 1000).toFixed(0).padStart(9)}  ${(b.wasm ? 'yes' : 'no').padEnd(5)}  ${round1(initMs).toFixed(1).padStart(16)}  ${range.padStart(12)}  ${(initMs / baselineMs).toFixed(1).padStart(10)}  ${round1(cpuMs).toFixed(1).padStart(15)}`,
    );
  }
  const maxInitMs = Math.max(...Object.values(handlers).map((h) => h.init_ms));
  const maxInitCpuMs = Math.max(...Object.values(handlers).map((h) => h.init_cpu_ms));
  const maxBundleBytes = Math.max(...bundles.map((b) => b.bundleBytes));
  console.log(
    `\nmax init ${maxInitMs} ms wall / ${maxInitCpuMs} ms CPU (target ≤ ${TARGET_INIT_MS}), ` +
      `max bundle ${maxBundleBytes} B (limit ${MAX_BUNDLE_BYTES})`,
  );
  console.log(
    JSON.stringify({
      bench: 'cold',
      runs: RUNS,
      node: process.version,
      baseline_ms: round1(baselineMs),
      load_avg_1m: round1(load1m),
      cpus: cpus().length,
      handlers,
      max_init_ms: maxInitMs,
      max_init_cpu_ms: maxInitCpuMs,
      max_bundle_bytes: maxBundleBytes,
      target_init_ms: TARGET_INIT_MS,
      bundle_limit_bytes: MAX_BUNDLE_BYTES,
      within_targets: maxInitMs <= TARGET_INIT_MS && maxBundleBytes <= MAX_BUNDLE_BYTES,
    }),
  );
};

await main();
