// A nats-server broker for the Nest NATS row (Debian package `nats-server`), started by the bench in the
// parent process: loopback only, a port of its own choosing, no cluster and no monitoring port.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface NatsBroker {
  port: number;
  stop(): Promise<void>;
}

const START_TIMEOUT = 10_000;
const STOP_TIMEOUT = 5_000;
const MISSING =
  'nats-server not found: the nest-nats bench row needs the Debian package nats-server (apt-get install nats-server)';

export async function startNatsBroker(): Promise<NatsBroker> {
  // -p -1: a random free port, printed in the log line the start waits for.
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    // No pid: it never started (not installed).
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT);
    await exited;
    clearTimeout(killer);
  };
  const log: string[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`nats-server did not start within ${START_TIMEOUT} ms:\n${log.join('\n')}`)),
        START_TIMEOUT,
      );
      let listening: number | undefined;
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'ENOENT' ? new Error(MISSING) : error),
      );
      void exited.then(() => reject(new Error(`nats-server exited before it was ready:\n${log.join('\n')}`)));
      createInterface({ input: child.stderr! }).on('line', (line) => {
        if (log.length < 50) log.push(line);
        const found = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(line);
        if (found) listening = Number(found[1]);
        if (/Server is ready/.test(line) && listening !== undefined) {
          clearTimeout(timer);
          resolve(listening);
        }
      });
    });
    return { port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
