// The sample: three `math` replicas and a gateway node on one in-memory bus, showing round robin over
// RUNNING replicas and busy or stopped replicas being skipped. (The Nest sample cluster replaces this
// once the transport lands.)
import { MemoryBus } from '../lib/discovery/memory.transport.js';
import { KableNode } from '../lib/node/kable-node.js';

const bus = new MemoryBus();
const node = (id: string) =>
  new KableNode(
    id,
    { replica: true, host: '127.0.0.1', discovery: { advertiseInterval: 100 } },
    bus.transport(),
  );

const replicas = [node('math'), node('math'), node('math')];
const gateway = node('gateway');
await Promise.all([...replicas, gateway].map((n) => n.up()));
const names = new Map<string, string>(replicas.map((replica, i) => [replica.iid, `math#${i + 1}`]));

async function round(title: string): Promise<void> {
  const picks: string[] = [];
  for (let i = 0; i < 6; i++)
    picks.push(names.get((await gateway.pick('math', { timeout: 2000 })).iid) ?? '?');
  console.log(`${title.padEnd(34)} ${picks.join(' ')}`);
}

const seen = (count: number) =>
  new Promise<void>((resolve) => {
    const check = () => {
      if (gateway.running('math').length !== count) return;
      gateway.off('peer:added', check).off('peer:state', check);
      resolve();
    };
    gateway.on('peer:added', check).on('peer:state', check);
    check();
  });

await seen(3);
await round('three RUNNING replicas:');
replicas[0].doing('rebuilding a cache');
await seen(2);
await round('math#1 DOING_SOMETHING:');
replicas[1].stop('maintenance');
await seen(1);
await round('math#2 STOPPED as well:');
replicas[0].start();
replicas[1].start();
await seen(3);
await round('both back to RUNNING:');
await Promise.all([...replicas, gateway].map((n) => n.down()));
console.log('done: every pick went to a RUNNING replica, in one cluster-wide order.');
