import { afterEach, describe, expect, it } from '@jest/globals';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import type { KableWarning } from '../../lib/node/errors.js';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_VARIABLE } from '../../lib/node/protocol-version.js';
import { waitUntil } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// A caller of version N and replicas of version N+1 only (the same sources, the version set for the
// process): requests fail at once with KABLE_NO_NODE naming the replicas and their version, nothing is
// sent to them; a replica of version N serves them as soon as it is up.
const SERVICE = 'test/nest/fixtures/run-service.ts';
const nextMajor = `${PROTOCOL_VERSION.major + 1}.0`;

describe('a caller facing replicas of another major protocol version', () => {
  const children: ChildFixture[] = [];
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  });

  function replica(discovery: ReturnType<typeof loopbackDiscovery>, version?: string): ChildFixture {
    const options = { id: 'math', replica: true, host: '127.0.0.1', discovery };
    const env = version === undefined ? undefined : { [PROTOCOL_VERSION_VARIABLE]: version };
    const child = runFixture(SERVICE, ['math', JSON.stringify(options)], 30_000, undefined, [], env);
    children.push(child);
    return child;
  }

  it.each([
    ['with a target service', { target: 'math' }],
    ['without a target service', {}],
  ])(
    '%s: fails at once naming them, and is served once a replica of its own version comes',
    async (_name, target) => {
      const discovery = loopbackDiscovery();
      const newer = [replica(discovery, nextMajor), replica(discovery, nextMajor)];
      const ports = (await Promise.all(newer.map((child) => child.ready))).map(
        (ready) => ready.port as number,
      );
      const math = new KableClientProxy({
        host: '127.0.0.1',
        discovery,
        pickTimeout: 20_000,
        timeout: 30_000,
        ...target,
      });
      clients.push(math);
      const warnings: KableWarning[] = [];
      math.node.on('warning', (warning) => warnings.push(warning));
      await math.connect();
      await waitUntil(
        () => math.node.peers().filter((peer) => peer.id === 'math' && peer.state === 'RUNNING').length === 2,
        [math.node],
        ['peer:added', 'peer:state'],
        15_000,
        'the client to see both newer replicas RUNNING',
      );
      const started = performance.now();
      const failure = (await firstValueFrom(math.send({ cmd: 'sum' }, [1, 2])).catch(
        (error: unknown) => error,
      )) as {
        code: string;
        message: string;
      };
      // Far below pickTimeout (20 s): it did not wait for a node.
      expect(performance.now() - started).toBeLessThan(2000);
      expect(failure.code).toBe('KABLE_NO_NODE');
      for (const port of ports)
        expect(failure.message).toContain(`math at 127.0.0.1:${port} (incompatible v${nextMajor})`);
      expect(failure.message).toContain(`this caller (v${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor})`);
      const stats = math.node.stats();
      expect(stats.incompatiblePeers).toBe(2);
      // Not even asked for their pattern lists: nothing was sent to them.
      expect(stats['client.connectionsOpened'] ?? 0).toBe(0);
      expect(warnings.filter((w) => w.code === 'KABLE_INCOMPATIBLE_PEER').map((w) => w.message)).toEqual([
        expect.stringContaining(
          `protocol v${nextMajor}, this node v${PROTOCOL_VERSION.major}.`,
        ) as unknown as string,
      ]);
      const current = replica(discovery);
      const { iid } = await current.ready;
      await math.whenServed({ cmd: 'sum' }, { timeout: 15_000 });
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => firstValueFrom(math.send({ cmd: 'sum' }, [1, 2]))),
      );
      expect(answers).toEqual([3, 3, 3, 3, 3]);
      expect(math.nodesFor({ cmd: 'sum' }).map((peer) => peer.iid)).toEqual([iid]);
    },
    60_000,
  );
});
