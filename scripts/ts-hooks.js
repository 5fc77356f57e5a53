// Module hooks that let child processes of the tests (real Nest apps, discovery nodes) run TypeScript
// sources directly, compiled by swc with the same decorator settings as Jest.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import swc from '@swc/core';
import { swcOptions } from './swc-options.js';

// With KABLE_NEST_COMPAT=11 (the Nest 11 suite), child processes load Nest from test/compat/ as Jest does.
const compatBase = new URL('../test/compat/package.json', import.meta.url).href;
const compat = process.env.KABLE_NEST_COMPAT === '11';

export async function resolve(specifier, context, next) {
  if (compat && /^@nestjs\/(common|core|microservices|platform-express)(\/|$)/.test(specifier)) {
    return next(specifier, { ...context, parentURL: compatBase });
  }
  // Sources import siblings as './x.js' (NodeNext); on disk they are './x.ts'.
  if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const candidate = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (existsSync(fileURLToPath(candidate))) return { url: candidate.href, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = await readFile(fileURLToPath(url), 'utf8');
  const { code } = await swc.transform(source, { ...swcOptions, filename: fileURLToPath(url) });
  return { format: 'module', source: code, shortCircuit: true };
}
