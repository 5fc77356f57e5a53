// npm run build: the package's two builds from the same sources, by tsc (see docs/development.md, "Builds"):
// dist/esm for `import` and dist/cjs for `require`. Each folder gets a package.json that says its module
// type, so Node and TypeScript read dist/cjs/*.js as CommonJS although the package itself is "module".
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync('dist', { recursive: true, force: true });
for (const [project, folder, type] of [
  ['tsconfig.build.json', 'dist/esm', 'module'],
  ['tsconfig.build-cjs.json', 'dist/cjs', 'commonjs'],
]) {
  const run = spawnSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' });
  if (run.status !== 0) {
    process.exitCode = run.status ?? 1;
    throw new Error(`tsc -p ${project} failed`);
  }
  writeFileSync(`${folder}/package.json`, JSON.stringify({ type }, null, 2) + '\n');
}
chmodSync('dist/esm/cli/kable.js', 0o755);
