// The consumer apps, end to end, from the packed tarball (see docs/getting-started.md, "ESM and CommonJS apps"):
//   node test/consumers/run.mjs [app ...]
// packs the package (`npm pack`, which builds it), then for each app: `npm ci` from its committed
// lockfile, its own build, its own e2e tests, and two replicas of its microservice plus a caller process,
// all on loopback discovery; for nest11-cjs also a rolling upgrade across protocol versions under load
// (see rollingUpgrade). Exits non-zero on the first failure, saying which step failed.
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
/** The app whose installed package also runs the rolling upgrade (see rollingUpgrade). */
const ROLLING_APP = 'nest11-cjs';
const VERSION_VARIABLE = 'KABLE_TEST_PROTOCOL_VERSION';
const LOAD_LANES = 4;
/** Answers every caller must get after each replacement before the next one. */
const FLOW_ANSWERS = 200;
const FLOW_TIMEOUT_MS = 30_000;

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

/**
 * A process of an app, read line by line: `until` resolves the first line (parsed as JSON) that `test`
 * accepts, seen already or to come; `next` the first that has `key`.
 */
function start(app, file, env, args = []) {
  const child = spawn(process.execPath, [file, ...args], {
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
    for (const waiter of [...waiters]) if (waiter.test(value)) waiter.resolve(value);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const until = (test, within, what) =>
    new Promise((resolve, reject) => {
      const found = seen.find(test);
      if (found) return resolve(found);
      const timer = setTimeout(
        () => reject(new Error(`${app} ${file}: waited ${within} ms in vain for ${what}\n${stderr}`)),
        within,
      );
      const waiter = {
        test,
        resolve: (value) => {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(waiter), 1);
          resolve(value);
        },
      };
      waiters.push(waiter);
      void exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`${app} ${file} exited (${how}) before ${what}\n${stderr}`));
      });
    });
  const next = (key, within) => until((value) => key in value, within, `a "${key}" line`);
  return { child, next, until, exited, stderr: () => stderr, seen };
}

async function stop(processes) {
  for (const { child } of processes) if (child.exitCode === null) child.kill('SIGTERM');
  const bound = setTimeout(() => processes.forEach(({ child }) => child.kill('SIGKILL')), 10_000);
  await Promise.all(processes.map(({ exited }) => exited));
  clearTimeout(bound);
}

/** A multicast group of its own, sent and received through 127.0.0.1 only. */
function loopbackDiscoveryEnv() {
  const discovery = {
    mode: 'multicast',
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
    advertiseInterval: 100,
  };
  const env = { ...process.env, KABLE_DISCOVERY: JSON.stringify(discovery) };
  delete env[VERSION_VARIABLE];
  return env;
}

async function serveAndCall(app) {
  console.log(`\n== ${app}: two replicas of dist/main.js and one dist/caller.js`);
  const env = loopbackDiscoveryEnv();
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

/** The protocol version the app's installed package speaks, as "major.minor" with the minor bumped. */
function nextMinorOf(app) {
  const env = { ...process.env };
  delete env[VERSION_VARIABLE];
  const run = spawnSync(
    process.execPath,
    ['-p', "JSON.stringify(require('nestjs-kable').PROTOCOL_VERSION)"],
    { cwd: join(here, app), env, encoding: 'utf8', timeout: READY_TIMEOUT_MS },
  );
  if (run.status !== 0)
    throw new Error(`${app}: cannot read PROTOCOL_VERSION from nestjs-kable\n${run.stderr}`);
  const { major, minor } = JSON.parse(run.stdout);
  return `${major}.${minor + 1}`;
}

/**
 * The rolling upgrade of issue #30 from the installed tarball: build A is the package as installed, build
 * B the same package started with KABLE_TEST_PROTOCOL_VERSION at the next minor (it then also sends a
 * frame type after each hello and an advert field A does not know). Three replicas (dist/main.js) and
 * two callers under load (dist/load.js) of A are replaced one at a time by B (SIGTERM, start B, wait
 * until every caller has had FLOW_ANSWERS more answers), in the given order, then the other half. Fails
 * unless no request failed, and unless the A nodes that met B counted what they ignored.
 */
async function rollingUpgrade(app, order) {
  const bVersion = nextMinorOf(app);
  console.log(`\n== ${app}: rolling upgrade across protocol versions, ${order} (B speaks ${bVersion})`);
  const envA = loopbackDiscoveryEnv();
  const envB = { ...envA, [VERSION_VARIABLE]: bVersion };
  const running = [];
  const launch = (file, env, args) => {
    const child = start(app, file, env, args);
    running.push(child);
    return child;
  };
  const replica = async (env) => {
    const child = launch('dist/main.js', env);
    await child.next('ready', READY_TIMEOUT_MS);
    return child;
  };
  const caller = async (env) => {
    const child = launch('dist/load.js', env, [String(LOAD_LANES)]);
    await child.next('ready', READY_TIMEOUT_MS);
    return child;
  };
  const latest = (child) => child.seen.findLast((value) => 'progress' in value)?.progress;
  // Every caller gets FLOW_ANSWERS more answers, and none has failed a request so far.
  const flowing = async (callers, after) => {
    await Promise.all(
      callers.map(async (child) => {
        const from = latest(child)?.ok ?? 0;
        const { progress } = await child.until(
          (value) => value.progress?.ok >= from + FLOW_ANSWERS || value.progress?.failed > 0,
          FLOW_TIMEOUT_MS,
          `${FLOW_ANSWERS} more answers after ${after} (it had ${from}; failed requests are reported at once)`,
        );
        if (progress.failed > 0)
          throw new Error(
            `${app} ${order}: requests failed after ${after}: ${JSON.stringify(progress.errors)}`,
          );
      }),
    );
  };
  /** SIGTERM; a caller reports its final counts first, and both kinds must end by that signal. */
  const retire = async (child, what) => {
    const final = child.next('final', READY_TIMEOUT_MS);
    child.child.kill('SIGTERM');
    const { final: counts } = await final;
    let bound;
    const how = await Promise.race([
      child.exited,
      new Promise((resolve) => (bound = setTimeout(resolve, 10_000, 'no exit within 10 s'))),
    ]);
    clearTimeout(bound);
    if (how !== 'SIGTERM' && how !== 0)
      throw new Error(`${app} ${order}: ${what} ended with ${how} after SIGTERM\n${child.stderr()}`);
    return counts;
  };
  const ignoredB = (counts, what) => {
    if (!(counts.unknownFrames > 0 && counts.unknownAdvertFields > 0))
      throw new Error(
        `${app} ${order}: ${what} of A met B but counted ${counts.unknownFrames} unknown frames and ` +
          `${counts.unknownAdvertFields} unknown advert fields (expected both > 0)`,
      );
  };
  try {
    const replicas = await Promise.all([replica(envA), replica(envA), replica(envA)]);
    const callers = await Promise.all([caller(envA), caller(envA)]);
    await flowing(callers, 'the start');
    const finals = [];
    const rollReplicas = async (checkA) => {
      for (let i = 0; i < replicas.length; i++) {
        const counts = await retire(replicas[i], `replica ${i + 1}`);
        if (checkA) ignoredB(counts, `replica ${i + 1}`);
        replicas[i] = await replica(envB);
        await flowing(callers, `replica ${i + 1} became B`);
      }
    };
    const rollCallers = async (checkA) => {
      for (let i = 0; i < callers.length; i++) {
        const counts = await retire(callers[i], `caller ${i + 1}`);
        if (checkA) ignoredB(counts, `caller ${i + 1}`);
        finals.push(counts);
        callers[i] = await caller(envB);
        await flowing(callers, `caller ${i + 1} became B`);
      }
    };
    // Whichever half goes second, its A nodes served or called B nodes: each must have ignored (and
    // counted) B's frame type and advert field rather than dropped the connection or the node.
    if (order === 'servers first') {
      await rollReplicas(false);
      await rollCallers(true);
    } else {
      await rollCallers(false);
      await rollReplicas(true);
    }
    for (let i = 0; i < callers.length; i++) finals.push(await retire(callers[i], `B caller ${i + 1}`));
    const failed = finals.filter((counts) => counts.failed > 0);
    if (failed.length > 0)
      throw new Error(
        `${app} ${order}: requests failed: ${failed.map((counts) => JSON.stringify(counts.errors)).join(', ')}`,
      );
    const answers = finals.map((counts) => counts.ok);
    console.log(
      `${app} ${order}: 3 replicas and 2 callers moved from A to B, 0 failed requests ` +
        `(answers per caller: ${answers.join(', ')}), A nodes counted B's unknown frames and fields`,
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
    if (app === ROLLING_APP) {
      await rollingUpgrade(app, 'servers first');
      await rollingUpgrade(app, 'callers first');
    }
  }
  console.log(`\nconsumers: all passed (${chosen.join(', ')})`);
} catch (error) {
  console.error(`\nconsumers: FAILED: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
}
