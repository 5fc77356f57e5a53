import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

export interface Child {
  process: ChildProcess;
  next(key: string): Promise<Record<string, unknown>>;
  send(line: string): void;
  stop(): Promise<void>;
}

/**
 * BENCH_CPU_PROF=<dir>: every bench child writes a V8 CPU profile there (Node refuses --cpu-prof in
 * NODE_OPTIONS, so it has to be passed here).
 */
function profiling(): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  const flags = process.env.BENCH_NODE_FLAGS?.split(' ').filter((flag) => flag !== '') ?? [];
  return [...flags, ...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [])];
}

/**
 * Process settings for a server taking large binary uploads, measured beside the defaults in the payload
 * rows (bench/payloads.ts) and given in docs/limits.md; the same for either transport. With
 * Node 20's defaults such a server can fall into one of two states: V8 counts the ArrayBuffer memory
 * allocated since the last full collection against a limit that, after a full collection with little
 * promoted, sits one 8 MiB payload above the live heap, so marking restarts every frame or two
 * (`--heap-growing-percent=300` fixes the growth factor at 4, what V8 picks in the good state); and glibc
 * hands freed heap memory back to the kernel once more than twice the largest freed block is free at the
 * top, so the next payload's buffer is fresh pages, a fault for each 4 KiB (the tunables keep 256 MiB).
 */
export const LARGE_UPLOAD_SETTINGS = {
  nodeOptions: ['--heap-growing-percent=300'],
  env: { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432' },
};

/** Whether `taskset` works here: checked once. */
let pinnable: boolean | undefined;

/**
 * Whether a server / client pair can run on a core each (`taskset`, two cores or more). A pair of
 * processes on loopback is two hosts in miniature: left to the scheduler on this 2-core VM, both sometimes
 * shared one core for part of a run, and the same transport's throughput swung 200,000–400,000 req/s from
 * one pair to the next. BENCH_PIN=0 runs unpinned.
 */
export function pinningAvailable(): boolean {
  if (process.env.BENCH_PIN === '0' || availableParallelism() < 2) return false;
  pinnable ??= spawnSync('taskset', ['-c', '1', process.execPath, '-e', '0']).status === 0;
  return pinnable;
}

/**
 * Runs a TypeScript bench script in a fresh process (with the test loader and its network guard), on
 * `core` alone when one is given and pinning is available.
 */
export function run(
  file: string,
  args: string[],
  env?: Record<string, string>,
  nodeOptions: string[] = [],
  core?: number,
): Child {
  const argv = [...nodeOptions, ...profiling(), '--import', './scripts/register-ts.js', file, ...args];
  const pinned = core !== undefined && pinningAvailable();
  const child = spawn(
    pinned ? 'taskset' : process.execPath,
    pinned ? ['-c', String(core), process.execPath, ...argv] : argv,
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: env === undefined ? process.env : { ...process.env, ...env },
    },
  );
  const waiting: Array<[string, (value: Record<string, unknown>) => void]> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      const value = JSON.parse(text) as Record<string, unknown>;
      const at = waiting.findIndex(([key]) => key in value);
      if (at >= 0) waiting.splice(at, 1)[0][1](value);
    } catch {
      // Not a result line.
      if (process.env.BENCH_ECHO === '1') process.stderr.write(text + '\n');
    }
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    process: child,
    next: (key) =>
      new Promise((resolve, reject) => {
        waiting.push([key, resolve]);
        void exited.then(() => reject(new Error(`${file} exited before "${key}"`)));
      }),
    send: (line) => child.stdin?.write(line + '\n'),
    stop: async () => {
      if (profiling().length > 0) {
        // A profile is written on a normal exit only: ask first (servers exit on an "exit" line).
        child.stdin?.write('exit\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Share of CPU time the hypervisor gave to other guests (steal) since the returned function was made,
 * from /proc/stat; NaN where there is no /proc/stat. On a shared VM this explains noisy rounds.
 */
export function stealMeter(): () => number {
  const read = (): [number, number] | undefined => {
    try {
      const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
      const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
      return [fields.reduce((a, b) => a + b, 0), fields[7] ?? 0];
    } catch {
      return undefined;
    }
  };
  const start = read();
  return () => {
    const end = read();
    if (start === undefined || end === undefined || end[0] === start[0]) return Number.NaN;
    return (end[1] - start[1]) / (end[0] - start[0]);
  };
}

/**
 * Multicast discovery on loopback (interface 127.0.0.1) with a group and port of its own, so that
 * concurrent bench clusters never hear each other; `advertiseInterval` as given, else the default.
 */
export function loopbackMulticast(advertiseInterval?: number) {
  return {
    mode: 'multicast' as const,
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
    ...(advertiseInterval === undefined ? {} : { advertiseInterval }),
  };
}
