import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { DISCOVERY_DEFAULTS } from '../lib/discovery/create-transport.js';
import { LIVENESS_DEFAULTS } from '../lib/data-plane/peer-liveness.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../lib/data-plane/frames.js';
import { DEFAULT_MAX_QUEUED_BYTES } from '../lib/data-plane/peer-connection.js';
import { KableClientProxy, KableOptionsError, KableServer, kable } from '../lib/index.js';
import { CLIENT_DEFAULTS, SERVER_DEFAULTS, rejectUnknownOptions } from '../lib/nest/kable.options.js';
import { NODE_OPTION_NAMES } from '../lib/node/validate-options.js';
import { DEFAULTS } from '../lib/node/options.js';
import { regions } from './support/code-regions.js';

const guides = readdirSync('docs')
  .filter((name) => name.endsWith('.md'))
  .map((name) => ({ name, text: readFileSync(join('docs', name), 'utf8') }));

describe('docs/ code blocks', () => {
  it('are each a region of sample/docs/examples.ts, word for word', () => {
    // The file is compiled against the library by `npm run typecheck`.
    const examples = [...regions(readFileSync('sample/docs/examples.ts', 'utf8')).values()];
    let count = 0;
    for (const { name, text } of guides) {
      for (const match of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
        count++;
        expect({ guide: name, block: match[1].trim(), found: examples.includes(match[1].trim()) }).toEqual({
          guide: name,
          block: match[1].trim(),
          found: true,
        });
      }
    }
    expect(count).toBeGreaterThanOrEqual(10);
  });

  it('link only to files and headings that exist, as does the README', () => {
    const pages = [
      { name: 'README.md', dir: '.', text: readFileSync('README.md', 'utf8') },
      ...guides.map((guide) => ({ ...guide, dir: 'docs' })),
    ];
    let links = 0;
    for (const { name, dir, text } of pages) {
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^https?:/.test(target)) continue;
        links++;
        const [path, anchor] = target.split('#');
        const file = path === '' ? join(dir, name) : join(dir, path);
        expect({ guide: name, target, exists: existsSync(file) }).toEqual({
          guide: name,
          target,
          exists: true,
        });
        if (anchor !== undefined && file.endsWith('.md')) {
          const slugs = [...readFileSync(file, 'utf8').matchAll(/^#+ (.+)$/gm)].map((heading) =>
            slug(heading[1]),
          );
          expect({ guide: name, target, anchored: slugs.includes(anchor) }).toEqual({
            guide: name,
            target,
            anchored: true,
          });
        }
      }
    }
    expect(links).toBeGreaterThanOrEqual(50);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

// ---- docs/configuration.md against the option types and validators ----

interface Row {
  option: string;
  defaults: string;
  bounds: string;
}

function tableUnder(heading: string): Row[] {
  const text = readFileSync('docs/configuration.md', 'utf8');
  const section = text.split(/^## /m).find((part) => part.startsWith(heading));
  if (section === undefined) throw new Error(`docs/configuration.md has no section "${heading}"`);
  const rows: Row[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const option = /^`([\w.]+)`$/.exec(cells[1] ?? '');
    if (option) rows.push({ option: option[1], defaults: cells[2], bounds: cells[3] });
  }
  return rows;
}

/** The property names of exported option types, inherited ones included, as the compiler sees them. */
function optionTypes(): { all: Record<string, string[]>; declared: Record<string, string[]> } {
  const program = ts.createProgram(['lib/index.ts'], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const index = checker.getSymbolAtLocation(program.getSourceFile('lib/index.ts')!)!;
  const found: Record<string, string[]> = {};
  const declared: Record<string, string[]> = {};
  for (const exported of checker.getExportsOfModule(index)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (!(symbol.flags & ts.SymbolFlags.Interface)) continue;
    found[exported.name] = checker
      .getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol))
      .map((property) => property.name);
    declared[exported.name] = [...(symbol.members?.keys() ?? [])].map(String);
  }
  return { all: found, declared };
}

/** The keys a validator accepts, from the message it throws on an unknown one. */
function acceptedBy(who: 'KableServer' | 'KableClientProxy'): string[] {
  try {
    rejectUnknownOptions({ '': true }, who);
  } catch (error) {
    return /it accepts (.*)\.$/.exec((error as Error).message)![1].split(', ');
  }
  throw new Error(`${who} accepted an unknown option`);
}

const nested = (prefix: string, keys: string[]) => keys.map((key) => `${prefix}.${key}`);
const sorted = (keys: Iterable<string>) => [...new Set(keys)].sort();

/** Options at `path` (a.b) with `value`, plus what the path needs to be checked on its own. */
function optionsAt(path: string, value: unknown): Record<string, unknown> {
  const [head, tail] = path.split('.');
  if (tail === undefined) return { [head]: value };
  const base = head === 'busy' ? { maxEventLoopDelayMs: 200 } : {};
  return { [head]: { ...base, [tail]: value } };
}

type Build = (options: Record<string, unknown>) => unknown;
const builders: Record<string, Build> = {
  'Node options': (options) => kable('bounds', options),
  'KableServer options': (options) => new KableServer({ id: 'bounds', ...options }),
  'KableClientProxy options': (options) => new KableClientProxy(options),
};

describe('docs/configuration.md', () => {
  const { all: types, declared } = optionTypes();
  const node = types.KableOptions.filter((key) => key !== 'discovery' && key !== 'busy');
  // A server's or client's own options, and the node options it declares again (another default).
  const own = (name: string) => declared[name];

  it('has a row for every option of the types, and every row is an option', () => {
    expect(sorted(tableUnder('Node options').map((row) => row.option))).toEqual(
      sorted([
        ...node,
        'discovery',
        'busy',
        ...nested('discovery', types.DiscoveryOptions),
        ...nested('busy', types.OverloadOptions),
      ]),
    );
    expect(sorted(tableUnder('KableServer options').map((row) => row.option))).toEqual(
      sorted(own('KableServerOptions')),
    );
    expect(sorted(tableUnder('KableClientProxy options').map((row) => row.option))).toEqual(
      sorted([...own('KableClientOptions'), ...nested('liveness', types.LivenessOptions)]),
    );
    expect(sorted(tableUnder('KableModule options').map((row) => row.option))).toEqual(
      sorted(own('KableModuleOptions')),
    );
  });

  it('the types and the validators agree on which options exist', () => {
    expect(sorted(NODE_OPTION_NAMES)).toEqual(sorted(types.KableOptions));
    expect(sorted(acceptedBy('KableServer'))).toEqual(sorted(types.KableServerOptions));
    expect(sorted(acceptedBy('KableClientProxy'))).toEqual(sorted(types.KableClientOptions));
  });

  it('shows the library’s own defaults', () => {
    const expected: Record<string, Record<string, unknown>> = {
      'Node options': {
        pickTimeout: DEFAULTS.pickTimeout,
        maxPickWaiters: DEFAULTS.maxPickWaiters,
        namespace: DEFAULTS.namespace,
        'discovery.mode': DISCOVERY_DEFAULTS.mode,
        'discovery.address': DISCOVERY_DEFAULTS.broadcastAddress,
        'discovery.port': DEFAULTS.discoveryPort,
        'discovery.ttl': DISCOVERY_DEFAULTS.ttl,
        'discovery.url': DISCOVERY_DEFAULTS.redisUrl,
        'discovery.advertiseInterval': DEFAULTS.advertiseInterval,
        'discovery.nodeTimeout': DEFAULTS.advertiseInterval * DEFAULTS.nodeTimeoutFactor,
        'discovery.maxUpdatesPerSecond': DEFAULTS.maxUpdatesPerSecond,
      },
      'KableServer options': {
        drainTimeout: SERVER_DEFAULTS.drainTimeout,
        leaveGrace: SERVER_DEFAULTS.leaveGrace,
        maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
      },
      'KableClientProxy options': {
        id: CLIENT_DEFAULTS.id,
        pickTimeout: CLIENT_DEFAULTS.pickTimeout,
        timeout: CLIENT_DEFAULTS.timeout,
        retries: CLIENT_DEFAULTS.retries,
        maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
        maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES,
        'liveness.probeAfter': LIVENESS_DEFAULTS.probeAfter,
        'liveness.answerWithin': LIVENESS_DEFAULTS.answerWithin,
      },
    };
    for (const [table, defaults] of Object.entries(expected)) {
      const rows = tableUnder(table);
      for (const [option, value] of Object.entries(defaults)) {
        const row = rows.find((each) => each.option === option)!;
        const shown = typeof value === 'number' ? String(value) : String(value);
        expect({ table, option, default: row.defaults }).toEqual({
          table,
          option,
          default: expect.stringMatching(
            new RegExp(`(^|[^\\d.])${shown.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}([^\\d]|$)`),
          ),
        });
      }
    }
  });

  it('states bounds the constructors enforce: the bound is accepted, the value past it refused', () => {
    let probed = 0;
    for (const [table, build] of Object.entries(builders)) {
      for (const { option, bounds } of tableUnder(table)) {
        const range = /^(\d+) to (\d+)(?: ms| bytes)?$/.exec(bounds);
        const floor = /^at least (\d+)$/.exec(bounds);
        if (!range && !floor) continue;
        const min = Number((range ?? floor)![1]);
        const accepted = range ? [min, Number(range[2])] : [min];
        const refused = range ? [min - 1, Number(range[2]) + 1, min + 0.5] : [min - 1, min + 0.5];
        for (const value of accepted) {
          expect({ table, option, value, accepted: attempt(build, option, value) }).toEqual({
            table,
            option,
            value,
            accepted: true,
          });
        }
        for (const value of refused) {
          expect({ table, option, value, accepted: attempt(build, option, value) }).toEqual({
            table,
            option,
            value,
            accepted: false,
          });
        }
        probed++;
      }
    }
    expect(probed).toBeGreaterThanOrEqual(20);
  });
});

function attempt(build: Build, option: string, value: number): boolean {
  try {
    build(optionsAt(option, value));
    return true;
  } catch (error) {
    if (error instanceof KableOptionsError) return false;
    throw error;
  }
}
