import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../lib/nest/kable.client.js';
import type { PeerRecord } from '../lib/node/peer-record.js';
import { loopbackMulticast, run } from './support.js';

/**
 * How long a client keeps routing to a replica killed with SIGKILL: with traffic, until the first
 * request on it fails (the node is then skipped); without traffic, until it is evicted (nodeTimeout).
 */
export async function killDetection(
  advertiseInterval: number,
): Promise<{ withTraffic: number; withoutTraffic: number }> {
  const discovery = loopbackMulticast(advertiseInterval);
  const measureOnce = async (traffic: boolean): Promise<number> => {
    const options = JSON.stringify({ id: 'math', replica: true, host: '127.0.0.1', discovery });
    const replicas = [0, 1, 2].map(() => run('test/nest/fixtures/run-service.ts', ['math', options]));
    const ready = await Promise.all(replicas.map((r) => r.next('ready')));
    const client = new KableClientProxy({ host: '127.0.0.1', target: 'math', discovery: discovery as never });
    try {
      await client.whenServed('who', { count: 3, timeout: 10_000 });
      const victim = ready[0].iid as string;
      let detected = 0;
      let killedAt = 0;
      const evicted = new Promise<void>((resolve) =>
        client.on('peer:removed', (peer: PeerRecord) => {
          if (peer.iid === victim) resolve();
        }),
      );
      let running = traffic;
      const load = Array.from({ length: traffic ? 10 : 0 }, async () => {
        while (running) {
          try {
            await firstValueFrom(client.send('who', {}));
          } catch {
            if (killedAt > 0 && detected === 0) detected = performance.now() - killedAt;
          }
        }
      });
      // Traffic reaches every replica before the kill, so requests are in flight on the victim's open
      // connection when it dies (a request not yet written there would just go to another replica).
      if (traffic) {
        const seen = new Set<string>();
        for (let n = 0; n < 100 && seen.size < 3; n++) {
          seen.add(await firstValueFrom(client.send<string>('who', {})));
        }
      }
      killedAt = performance.now();
      await replicas[0].stop();
      if (traffic) {
        // Bounded, so a run where no request fails (a regression) stops the bench with a reason.
        await new Promise<void>((resolve, reject) => {
          const check = () => {
            if (detected > 0) resolve();
            else if (performance.now() - killedAt > 30_000) {
              running = false;
              reject(new Error('killDetection: no request failed within 30 s of the SIGKILL'));
            } else setTimeout(check, 1);
          };
          check();
        });
      } else {
        await evicted;
        detected = performance.now() - killedAt;
      }
      running = false;
      await Promise.all(load);
      return detected;
    } finally {
      await client.close();
      await Promise.all(replicas.map((r) => r.stop()));
    }
  };
  return { withTraffic: await measureOnce(true), withoutTraffic: await measureOnce(false) };
}
