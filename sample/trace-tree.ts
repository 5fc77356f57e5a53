import type { PrintedSpan } from './tracing.js';

const KINDS = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

/**
 * One trace as an indented tree, each span with the process that made it:
 *   GET /order  [gateway, 14.2 ms]
 *   └─ CLIENT {"cmd":"order"} -> orders 127.0.0.1:41235  [gateway, 12.9 ms]
 */
export function renderTraceTree(spans: Array<PrintedSpan & { service: string }>): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | undefined, typeof spans>();
  for (const span of spans) {
    const parent =
      span.parentSpanId !== undefined && ids.has(span.parentSpanId) ? span.parentSpanId : undefined;
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (span: PrintedSpan & { service: string }, prefix: string, last: boolean, root: boolean) => {
    const kind = KINDS[span.kind] ?? String(span.kind);
    const a = span.attributes;
    const target =
      span.kind === 2 && a['kable.node.id'] !== undefined
        ? ` -> ${String(a['kable.node.id'])} ${String(a['server.address'])}:${String(a['server.port'])}`
        : '';
    const status =
      a['rpc.response.status_code'] !== undefined ? ` ${String(a['rpc.response.status_code'])}` : '';
    const label = `${kind === 'INTERNAL' ? '' : `${kind} `}${span.name}${target}${status}`;
    lines.push(
      `${prefix}${root ? '' : last ? '└─ ' : '├─ '}${label}  [${span.service}, ${span.durationMs.toFixed(1)} ms]`,
    );
    const below = children.get(span.spanId) ?? [];
    below.forEach((child, i) =>
      walk(child, prefix + (root ? '' : last ? '   ' : '│  '), i === below.length - 1, false),
    );
  };
  for (const root of children.get(undefined) ?? []) {
    lines.push(`trace ${root.traceId}`);
    walk(root, '', true, true);
  }
  return lines.join('\n');
}
