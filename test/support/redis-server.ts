import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port.js';

/** Whether a redis-server binary is installed (`.ci/run` installs one; a laptop may not have it). */
export function redisServerPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A real, throwaway redis-server on 127.0.0.1, without persistence: a restart empties it. */
export class RedisServer {
  port = 0;
  private process: ChildProcess | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts on a free port (kept across restarts, so clients reconnect to the same address). */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.port === 0 || attempt > 1) this.port = await freePort();
      try {
        return await this.launch();
      } catch (error) {
        if (attempt >= 3 || !String(error).includes('Address already in use')) throw error;
      }
    }
  }

  private async launch(): Promise<void> {
    const child = spawn(
      redisServerPath() ?? 'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.process = child;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
