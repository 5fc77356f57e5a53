import { runFixture, type ChildFixture } from './processes.js';

const SERVICE = 'test/nest/fixtures/run-service.ts';

/** `math` replicas in processes of their own (test/nest/fixtures/run-service.ts), all ended by `killAll`. */
export class ReplicaProcesses {
  readonly children: ChildFixture[] = [];

  /** Starts one replica with these KableServer options (id 'math', a replica, on 127.0.0.1 unless given). */
  start(options: Record<string, unknown>): ChildFixture {
    const json = JSON.stringify({ id: 'math', replica: true, host: '127.0.0.1', ...options });
    const child = runFixture(SERVICE, ['math', json], 30_000);
    this.children.push(child);
    return child;
  }

  /** SIGKILLs every replica still running; a stopped one is continued first, or it would not die. */
  killAll(): void {
    for (const child of this.children.splice(0)) {
      if (child.child.exitCode !== null || child.child.signalCode !== null) continue;
      child.child.kill('SIGCONT');
      child.child.kill('SIGKILL');
    }
  }
}
