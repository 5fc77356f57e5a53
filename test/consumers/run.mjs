// The consumer apps, end to end, from the packed tarball (see README "Install"):
//   node test/consumers/run.mjs [app ...]
// packs the package (`npm pack`, which builds it), then for each app: `npm ci` from its committed
// lockfile, its own build, its own e2e tests, and two replicas of its microservice plus a caller process,
// all on loopback discovery. Exits non-zero on the first failure, saying which step failed.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const APPS = ['nest11-cjs', 'nest12-esm', 'nest12-cjs'];
const STEP_TIMEOUT_MS = 5 * 60_000;
const READY_TIMEOUT_MS = 30_000;
const CALLER_TIMEOUT_MS = 60_000;

function step(title, command, args, cwd) {
  console.log(`\n== ${title}: ${command} ${args.join(' ')}`);
  const run = spawnSync(command, args, { cwd, stdio: 'inherit', timeout: STEP_TIMEOUT_MS });
  if (run.status !== 0)
    throw new Error(`${title} failed (${run.error?.message ?? `exit ${run.status ?? run.signal}`})`);
}

function pack() {
  const folder = join(here, '.packed');
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder);
  step('pack', 'npm', ['pack', '--pack-destination', folder, '--silent'], root);
  const [made] = readdirSync(folder).filter((file) => file.endsWith('.tgz'));
  renameSync(join(folder, made), join(folder, 'nestjs-kable.tgz'));
}

// npm records the tarball's checksum when someone runs `npm install` in an app; every new pack changes
// it, so the committed lockfiles leave it out and `npm ci` takes whatever tarball was just packed.
function forgetTarballChecksum(app) {
  const file = join(here, app, 'package-lock.json');
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const entry = lock.packages['node_modules/nestjs-kable'];
  if (entry?.integrity === undefined) return;
  delete entry.integrity;
  writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
}

/** A process of an app, read line by line: resolves lines that parse as JSON and have `key`. */
function start(app, file, env) {
  const child = spawn(process.execPath, [file], {
    cwd: join(here, app),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const seen = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      return;
    }
    seen.push(value);
    for (const waiter of [...waiters]) if (waiter.key in value) waiter.resolve(value);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const next = (key, within) =>
    new Promise((resolve, reject) => {
      const found = seen.find((value) => key in value);
      if (found) return resolve(found);
      const timer = setTimeout(
        () => reject(new Error(`${app} ${file}: no "${key}" within ${within} ms\n${stderr}`)),
        within,
      );
      waiters.push({ key, resolve: (value) => (clearTimeout(timer), resolve(value)) });
      void exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`${app} ${file} exited (${how}) before a "${key}" line\n${stderr}`));
      });
    });
  return { child, next, exited, stderr: () => stderr };
}

async function stop(processes) {
  for (const { child } of processes) if (child.exitCode === null) child.kill('SIGTERM');
  const bound = setTimeout(() => processes.forEach(({ child }) => child.kill('SIGKILL')), 10_000);
  await Promise.all(processes.map(({ exited }) => exited));
  clearTimeout(bound);
}

async function serveAndCall(app) {
  console.log(`\n== ${app}: two replicas of dist/main.js and one dist/caller.js`);
  const discovery = {
    mode: 'multicast',
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
    advertiseInterval: 100,
  };
  const env = { ...process.env, KABLE_DISCOVERY: JSON.stringify(discovery) };
  const replicas = [start(app, 'dist/main.js', env), start(app, 'dist/main.js', env)];
  const running = [...replicas];
  try {
    const iids = (await Promise.all(replicas.map((r) => r.next('ready', READY_TIMEOUT_MS)))).map(
      (r) => r.iid,
    );
    const caller = start(app, 'dist/caller.js', env);
    running.push(caller);
    const { result } = await caller.next('result', CALLER_TIMEOUT_MS);
    const code = await caller.exited;
    if (code !== 0) throw new Error(`${app} caller exited with ${code}\n${caller.stderr()}`);
    if (JSON.stringify(result.servedBy) !== JSON.stringify([...iids].sort()))
      throw new Error(
        `${app}: both replicas should serve; served by ${JSON.stringify(result.servedBy)}, replicas ${iids}`,
      );
    // A handler returning a bigint: a clear error for the caller, and both replicas serve on.
    for (const error of result.unencodable)
      if (error?.code !== 'KABLE_UNENCODABLE' || !/\(id: BigInt\)/.test(error.message ?? ''))
        throw new Error(
          `${app}: a bigint reply should fail with KABLE_UNENCODABLE, got ${JSON.stringify(error)}`,
        );
    if (JSON.stringify(result.servedAfter) !== JSON.stringify(result.servedBy))
      throw new Error(`${app}: after the bigint replies, served by ${JSON.stringify(result.servedAfter)}`);
    for (const replica of replicas)
      if (replica.child.exitCode !== null) throw new Error(`${app}: a replica exited\n${replica.stderr()}`);
    const event = await Promise.any(replicas.map((r) => r.next('event', 10_000)));
    if (event.event.from !== 'caller') throw new Error(`${app}: unexpected event ${JSON.stringify(event)}`);
    console.log(
      `${app}: ${result.requests} requests served by both replicas, bigint replies failed with ` +
        `KABLE_UNENCODABLE and both replicas served on, event delivered`,
    );
  } finally {
    await stop(running);
  }
}

const chosen = process.argv.length > 2 ? process.argv.slice(2) : APPS;
try {
  pack();
  for (const app of chosen) {
    const cwd = join(here, app);
    forgetTarballChecksum(app);
    step(`${app}: install`, 'npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], cwd);
    // As `nest build` with deleteOutDir: a stale incremental build file would make tsc emit nothing.
    for (const stale of ['dist', 'dist-e2e', 'tsconfig.build.tsbuildinfo', 'tsconfig.tsbuildinfo'])
      rmSync(join(cwd, stale), { recursive: true, force: true });
    step(`${app}: build`, 'npm', ['run', 'build'], cwd);
    step(`${app}: e2e tests`, 'npm', ['run', 'test:e2e'], cwd);
    await serveAndCall(app);
  }
  console.log(`\nconsumers: all passed (${chosen.join(', ')})`);
} catch (error) {
  console.error(`\nconsumers: FAILED: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
}
