import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Why the network-namespace harness cannot run here, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'the `ip` command (iproute2) is missing';
  }
  const probe = `kbprobe${randomBytes(3).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  } catch {
    return 'this container may not create network namespaces';
  }
  return undefined;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

/**
 * A private LAN: a bridge in a namespace of its own and `count` host namespaces wired to it by veth
 * pairs, addresses 10.77.0.1.., each with a default route (so 255.255.255.255 has somewhere to go).
 * Nothing touches the machine's own interfaces; `destroy()` deletes everything.
 */
export class PrivateLan {
  readonly id = randomBytes(3).toString('hex');
  readonly bridge = `kb${this.id}br`;
  readonly hosts: Array<{ ns: string; address: string }> = [];

  constructor(private readonly count: number) {}

  create(): void {
    try {
      ip('netns', 'add', this.bridge);
      ip('-n', this.bridge, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', this.bridge, 'link', 'set', 'br0', 'up');
      for (let i = 1; i <= this.count; i++) {
        const ns = `kb${this.id}h${i}`;
        const address = `10.77.0.${i}`;
        ip('netns', 'add', ns);
        ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', this.bridge);
        ip('-n', this.bridge, 'link', 'set', `p${i}`, 'master', 'br0');
        ip('-n', this.bridge, 'link', 'set', `p${i}`, 'up');
        ip('-n', ns, 'addr', 'add', `${address}/24`, 'brd', '10.77.0.255', 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        ip('-n', ns, 'route', 'add', 'default', 'dev', 'eth0');
        this.hosts.push({ ns, address });
      }
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  /** Cuts (or restores) one host's link: a partition. */
  link(host: number, up: boolean): void {
    ip('-n', this.hosts[host].ns, 'link', 'set', 'eth0', up ? 'up' : 'down');
    if (up) {
      // A link that went down loses its routes: put the default route back.
      try {
        ip('-n', this.hosts[host].ns, 'route', 'add', 'default', 'dev', 'eth0');
      } catch {
        // Already there.
      }
    }
  }

  destroy(): void {
    for (const host of this.hosts) {
      try {
        ip('netns', 'del', host.ns);
      } catch {
        // Already gone.
      }
    }
    try {
      ip('netns', 'del', this.bridge);
    } catch {
      // Already gone.
    }
  }
}
