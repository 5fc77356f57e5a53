import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { KableClientProxy, KableServer, type KableOptions } from '../lib/index.js';
import { sampleClientOptions, sampleNodeOptions, serviceArguments } from '../sample/sample-options.js';

/**
 * What the downward API would give as the pod's IP. Any address a node may bind does for validating the
 * options: the test constructs servers and clients, it never listens or sends.
 */
const POD_IP = '127.0.0.3';

// examples/ deploys the sample's services (Docker Compose, Kubernetes). Nothing here starts a container
// or sends a packet: the files are parsed, the environment they give each container is turned into
// Kable options by the sample's own code, and those options go through the library's constructors,
// which validate them as they would at start-up.

type Role = 'math' | 'orders' | 'gateway';
type Environment = Record<string, string>;
interface Container {
  where: string;
  role: Role;
  command: string[];
  env: Environment;
}

const ROLES: readonly Role[] = ['math', 'orders', 'gateway'];
const key = randomBytes(32).toString('base64');
/** The loader the images run the sample with: register-ts.js without the loopback-only network guard. */
const LOADER = ['--import', './scripts/register-ts-unguarded.js'];

const read = (path: string) => readFileSync(path, 'utf8');

/** The environment variables the sample reads (every KABLE_SAMPLE_* name in its sources). */
function sampleVariables(): Set<string> {
  const names = new Set<string>();
  for (const file of ['sample/sample-options.ts', 'sample/service.ts', 'sample/start.ts'])
    for (const match of read(file).matchAll(/\bKABLE_SAMPLE_[A-Z_]+/g)) names.add(match[0]);
  return names;
}

function roleOf(command: string[]): Role {
  const role = command.at(-1) as Role;
  expect(ROLES).toContain(role);
  return role;
}

function composeContainers(): Container[] {
  const compose = parse(read('examples/compose.yaml'), { merge: true }) as {
    services: Record<string, { command: string[]; environment: Record<string, string> }>;
  };
  return Object.entries(compose.services).map(([name, service]) => {
    const env: Environment = {};
    for (const [variable, value] of Object.entries(service.environment)) {
      // Compose interpolates ${KABLE_KEY...} from the shell: the test plays the shell.
      env[variable] = String(value).replace(/^\$\{KABLE_KEY(:\?[^}]*)?\}$/, key);
    }
    return { where: `compose service ${name}`, role: roleOf(service.command), command: service.command, env };
  });
}

interface EnvEntry {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}

function kubernetesDocuments(): Array<{ file: string; doc: any }> {
  const found: Array<{ file: string; doc: any }> = [];
  for (const file of readdirSync('examples/kubernetes').filter((name) => name.endsWith('.yaml'))) {
    for (const document of parseAllDocuments(read(`examples/kubernetes/${file}`))) {
      expect(document.errors).toEqual([]);
      found.push({ file, doc: document.toJS() });
    }
  }
  return found;
}

function kubernetesContainers(): Container[] {
  const containers: Container[] = [];
  for (const { file, doc } of kubernetesDocuments().filter(({ doc }) => doc.kind === 'Deployment')) {
    for (const container of doc.spec.template.spec.containers) {
      const env: Environment = {};
      for (const entry of container.env as EnvEntry[]) {
        if (entry.value !== undefined) env[entry.name] = entry.value;
        else if (entry.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env[entry.name] = POD_IP;
        else if (entry.valueFrom?.secretKeyRef?.name === 'kable-sample-key') env[entry.name] = key;
        else throw new Error(`${file}: ${entry.name} comes from something the test does not know`);
      }
      containers.push({ where: file, role: roleOf(container.command), command: container.command, env });
    }
  }
  return containers;
}

/** What the sample builds from that environment (sample/service.ts and sample/services/*.module.ts). */
function optionsOf({ role, env }: Container): { server?: KableOptions; client?: KableOptions } {
  const client = {
    gateway: { id: 'gateway' },
    orders: { id: 'orders-client', target: 'math' },
    math: undefined,
  }[role];
  return {
    ...(role === 'gateway' ? {} : { server: sampleNodeOptions(env) }),
    ...(client === undefined ? {} : { client: { ...sampleClientOptions(env), ...client } }),
  };
}

function checkContainer(container: Container): { server?: KableOptions; client?: KableOptions } {
  const { where, role, command, env } = container;
  expect({ where, command }).toEqual({ where, command: ['node', ...LOADER, ...serviceArguments(role)] });
  const known = sampleVariables();
  for (const variable of Object.keys(env))
    expect({ where, variable, known: known.has(variable) }).toEqual({ where, variable, known: true });
  const options = optionsOf(container);
  // The constructors validate every option (unknown keys, bounds, key, discovery) and open nothing.
  if (options.server) new KableServer({ id: role, replica: true, ...options.server });
  if (options.client) new KableClientProxy(options.client);
  for (const each of [options.server, options.client])
    if (each) expect({ where, key: each.key }).toEqual({ where, key });
  return options;
}

describe('examples/', () => {
  it('the Dockerfile runs the sample as its console does, with every file its command needs copied in', () => {
    const dockerfile = read('examples/Dockerfile');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    expect(cmd).not.toBeNull();
    expect(JSON.parse(cmd![1])).toEqual(['node', ...LOADER, ...serviceArguments('gateway')]);
    // The console (sample/start.ts) spawns the same script and role, through the guarded loader.
    expect(read('sample/start.ts')).toContain(
      "spawn(process.execPath, ['--import', './scripts/register-ts.js', ...serviceArguments(role)]",
    );
    const copied = [...dockerfile.matchAll(/^COPY (\S+) /gm)].map((match) => match[1]);
    for (const path of [
      LOADER[1],
      ...serviceArguments('gateway').slice(0, 1),
      'scripts/ts-hooks.js',
      'lib/index.ts',
    ]) {
      const file = path.replace(/^\.\//, '');
      expect(existsSync(file)).toBe(true);
      expect({ file, copied: copied.includes(file.split('/')[0]) }).toEqual({ file, copied: true });
    }
  });

  it('the Compose file runs every service with options the library accepts', () => {
    const containers = composeContainers();
    expect(containers.map((container) => container.role).sort()).toEqual(['gateway', 'math', 'orders']);
    for (const container of containers) {
      const options = checkContainer(container);
      const any = (options.server ?? options.client)!;
      // A container's own address (not the sample's loopback default), broadcast on the bridge network.
      expect(any.host).toBeUndefined();
      expect(any.discovery?.mode).toBe('broadcast');
    }
  });

  it('the Kubernetes manifests run every service with unicast discovery through the headless service', () => {
    const documents = kubernetesDocuments();
    const headless = documents.find(
      ({ doc }) => doc.kind === 'Service' && doc.spec.clusterIP === 'None',
    )!.doc;
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const seedPort = headless.spec.ports.find((port: { protocol: string }) => port.protocol === 'UDP').port;
    const seed = `${headless.metadata.name}:${seedPort}`;
    const containers = kubernetesContainers();
    expect(containers.map((container) => container.role).sort()).toEqual(['gateway', 'math', 'orders']);
    for (const { doc } of documents.filter(({ doc }) => doc.kind === 'Deployment')) {
      // Every pod is behind the headless service, so every pod is a seed.
      const labels = doc.spec.template.metadata.labels;
      for (const [label, value] of Object.entries(headless.spec.selector)) expect(labels[label]).toBe(value);
    }
    for (const container of containers) {
      const options = checkContainer(container);
      for (const each of [options.server, options.client]) {
        if (each === undefined) continue;
        expect(each.host).toBe(POD_IP); // the pod's IP, from the downward API
        expect(each.discovery).toMatchObject({ mode: 'unicast', peers: [seed] });
      }
      // Two nodes of one process need two unicast ports; the seeds are the servers' port.
      if (options.server) expect(options.server.discovery?.port).toBe(seedPort);
      if (options.client) expect(options.client.discovery?.port).not.toBe(seedPort);
      if (options.server && options.client)
        expect(options.client.discovery?.port).not.toBe(options.server.discovery?.port);
    }
    const gatewayService = documents.find(
      ({ doc }) => doc.kind === 'Service' && doc.metadata.name === 'kable-sample-gateway',
    );
    expect(gatewayService).toBeDefined();
  });
});
