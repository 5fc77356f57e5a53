import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Child {
  process: ChildProcess;
  next(key: string): Promise<Record<string, unknown>>;
  send(line: string): void;
  stop(): Promise<void>;
}

/** Runs a TypeScript bench script in a fresh process (with the test loader and its network guard). */
export function run(file: string, args: string[]): Child {
  const child = spawn(process.execPath, ['--import', './test/support/register-ts.js', file, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: Array<[string, (value: Record<string, unknown>) => void]> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      const value = JSON.parse(text) as Record<string, unknown>;
      const at = waiting.findIndex(([key]) => key in value);
      if (at >= 0) waiting.splice(at, 1)[0][1](value);
    } catch {
      // Not a result line.
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
