import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';

/** A fixture running in a child process, speaking JSON lines on stdout. */
export interface ChildFixture {
  child: ChildProcess;
  /** Every JSON line the child prints. */
  lines: EventEmitter<{ line: [value: Record<string, unknown>] }>;
  /** The first JSON line with `ready: true`. */
  ready: Promise<Record<string, unknown>>;
  /** Resolves with the next JSON line that has `key`. */
  next(key: string, timeout?: number): Promise<Record<string, unknown>>;
  send(line: string): void;
  /** Resolves with the exit code or signal once the process is gone. */
  exited: Promise<number | string>;
  /** Everything the child wrote to stderr, for failure messages. */
  stderr(): string;
}

/**
 * Runs a TypeScript fixture with the test loader (and its network guard) in a child process.
 * `nodeFlags` go to node itself (`--expose-gc` for a memory check); `env` adds variables (Jest's
 * `process.env` is a copy: changing it does not reach the children).
 */
export function runFixture(
  file: string,
  args: string[],
  timeout = 20_000,
  netns?: string,
  nodeFlags: string[] = [],
  env?: Record<string, string>,
): ChildFixture {
  const command = [process.execPath, ...nodeFlags, '--import', './scripts/register-ts.js', file, ...args];
  // In a network namespace of the test's own: `ip netns exec` runs the same command there.
  const [program, ...rest] = netns === undefined ? command : ['ip', 'netns', 'exec', netns, ...command];
  const child = spawn(program, rest, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: env === undefined ? process.env : { ...process.env, ...env },
  });
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString()).slice(-8000);
  });
  const waiting: Array<{ key: string; resolve: (value: Record<string, unknown>) => void }> = [];
  const lines = new EventEmitter<{ line: [value: Record<string, unknown>] }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.emit('line', value);
    const index = waiting.findIndex((w) => w.key in value);
    if (index >= 0) waiting.splice(index, 1)[0].resolve(value);
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(signal ?? code ?? -1)),
  );
  const next = (key: string, within = timeout) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${file} gave no "${key}" line within ${within} ms. stderr:\n${errors}`)),
        within,
      );
      const entry = {
        key,
        resolve: (value: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(value);
        },
      };
      waiting.push(entry);
      void exited.then((how) => {
        const at = waiting.indexOf(entry);
        if (at < 0) return;
        waiting.splice(at, 1);
        clearTimeout(timer);
        reject(new Error(`${file} exited (${how}) before a "${key}" line. stderr:\n${errors}`));
      });
    });
  const ready = next('ready');
  // Fixtures that never say "ready" must not leave a rejected promise nobody awaits.
  ready.catch(() => undefined);
  return {
    child,
    lines,
    ready,
    next,
    send: (line) => child.stdin?.write(line + '\n'),
    exited,
    stderr: () => errors,
  };
}
