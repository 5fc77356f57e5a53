import { afterEach, describe, expect, it } from '@jest/globals';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_VARIABLE } from '../../lib/node/protocol-version.js';
import { waitForEvent } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// A rolling upgrade to the next minor protocol version, under load. Build A is this release; build B is
// the same sources made to speak the next minor (KABLE_TEST_PROTOCOL_VERSION), which also sends a frame
// type after each hello and an advert field that A does not know. Three replicas and two callers of A,
// each in its own process, are replaced by B one at a time (SIGTERM, then start B), servers first in one
// run and callers first in the other: no request fails, and the A nodes that met B counted what they
// ignored. This is the fast in-tree version; test/consumers/run.mjs does the same from the packed
// tarball, installed in the Nest 11 CommonJS consumer app (step "rolling upgrade across protocol versions").
const SERVICE = 'test/nest/fixtures/run-service.ts';
const CALLER = 'test/nest/fixtures/run-caller.ts';
const B = { [PROTOCOL_VERSION_VARIABLE]: `${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor + 1}` };
const LANES = 4;

interface Counts {
  ok: number;
  errors: Record<string, string[]>;
  unknownFrames: number;
  unknownAdvertFields: number;
}

describe('a rolling upgrade to the next minor protocol version', () => {
  const children: ChildFixture[] = [];

  afterEach(() => {
    for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  });

  function start(file: string, args: string[], env?: Record<string, string>): ChildFixture {
    const child = runFixture(file, args, 60_000, undefined, [], env);
    children.push(child);
    return child;
  }

  function replica(discovery: object, env?: Record<string, string>): ChildFixture {
    const options = { id: 'math', replica: true, host: '127.0.0.1', discovery, leaveGrace: 150 };
    return start(SERVICE, ['math', JSON.stringify(options)], env);
  }

  function caller(discovery: object, env?: Record<string, string>): ChildFixture {
    const options = { host: '127.0.0.1', discovery, target: 'math', timeout: 10_000 };
    return start(CALLER, [JSON.stringify(options), String(LANES)], env);
  }

  async function statsOf(child: ChildFixture): Promise<Counts> {
    child.send('stats');
    return (await child.next('stats')).stats as Counts;
  }

  /** Stops a caller (SIGTERM): it waits for its requests in flight and reports its final counts. */
  async function stopCaller(child: ChildFixture): Promise<Counts> {
    const final = child.next('final');
    child.child.kill('SIGTERM');
    const { final: counts } = (await final) as { final: Counts };
    await child.exited;
    return counts;
  }

  async function stopReplica(child: ChildFixture): Promise<void> {
    child.child.kill('SIGTERM');
    expect(await child.exited).toBe('SIGTERM');
  }

  /** Waits until every caller has had 200 more requests answered (it prints each hundredth): traffic flows. */
  async function flowing(callers: ChildFixture[]): Promise<void> {
    await Promise.all(
      callers.map(async (child) => {
        const { ok } = await statsOf(child);
        await waitForEvent(
          child.lines,
          'line',
          (line: Record<string, unknown>) => Number(line.progress) >= ok + 200,
          30_000,
        );
      }),
    );
  }

  it.each([['servers first'], ['callers first']])(
    '%s: every request is answered throughout, and A ignores what B adds',
    async (order) => {
      const discovery = loopbackDiscovery();
      const replicas = [replica(discovery), replica(discovery), replica(discovery)];
      await Promise.all(replicas.map((child) => child.ready));
      const callers = [caller(discovery), caller(discovery)];
      await Promise.all(callers.map((child) => child.ready));
      await flowing(callers);
      const results: Counts[] = [];

      const rollReplicas = async (): Promise<void> => {
        for (let i = 0; i < replicas.length; i++) {
          await stopReplica(replicas[i]);
          replicas[i] = replica(discovery, B);
          await replicas[i].ready;
          await flowing(callers);
        }
      };
      const rollCallers = async (): Promise<void> => {
        for (let i = 0; i < callers.length; i++) {
          results.push(await stopCaller(callers[i]));
          callers[i] = caller(discovery, B);
          await callers[i].ready;
          await flowing(callers);
        }
      };

      if (order === 'servers first') {
        await rollReplicas();
        // A callers talked to B replicas: each ignored B's frame type and B's advert field.
        // (Each has sent 200 requests since the last B replica came, over connections opened by B's hello.)
        for (const counts of await Promise.all(callers.map(statsOf))) {
          expect(counts.unknownFrames).toBeGreaterThan(0);
          expect(counts.unknownAdvertFields).toBeGreaterThan(0);
        }
        await rollCallers();
      } else {
        await rollCallers();
        // A replicas served B callers: each ignored the frame type B sends after its hello.
        for (const counts of await Promise.all(replicas.map(statsOf))) {
          expect(counts.unknownFrames).toBeGreaterThan(0);
          expect(counts.unknownAdvertFields).toBeGreaterThan(0);
        }
        await rollReplicas();
      }
      for (const child of callers.splice(0)) results.push(await stopCaller(child));

      expect(results.map((counts) => counts.errors)).toEqual([{}, {}, {}, {}]);
      for (const counts of results) expect(counts.ok).toBeGreaterThan(100);
    },
    240_000,
  );
});
