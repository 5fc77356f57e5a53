import { versionFromArray, type ProtocolVersion } from '../node/protocol-version.js';

/**
 * The wire format: each frame is a 4-byte big-endian length followed by one MessagePack array whose
 * first element is the frame type. Requests are multiplexed on one connection by a numeric id. The full
 * specification, with the version rules, is docs/protocol.md.
 */
export const FrameType = {
  REQUEST: 1, // [1, id, pattern, data, metadata?]
  EVENT: 2, // [2, pattern, data, metadata?]
  NEXT: 3, // [3, id, value, last?]  last: the final value, the stream completes with it
  ERROR: 4, // [4, id, error]        the handler's error payload, passed to the caller unchanged
  COMPLETE: 5, // [5, id]
  CANCEL: 6, // [6, id]              the caller unsubscribed
  REFUSED: 7, // [7, id, reason]     not served (node not RUNNING, too busy): safe to retry elsewhere
  DESCRIBE: 8, // [8, id]             asks for the node's pattern lists
  DESCRIPTION: 9, // [9, id, { messages, events }]
  HELLO: 10, // [10, { id?, iid?, max?, v? }] first frame each way: who is calling (client), largest frame accepted, protocol version
  PING: 11, // [11, nonce]          client: are you there? (see peer-liveness.ts)
  PONG: 12, // [12, nonce]          server: yes, answered from its event loop
} as const;

/**
 * Types above this one are reserved for later minor versions: a frame of such a type (an array whose
 * first element is a whole number over LAST_FRAME_TYPE) is well-formed but unknown, so it is ignored and
 * counted, never a reason to close the connection. Anything else that is not a known frame is malformed.
 */
export const LAST_FRAME_TYPE = FrameType.PONG;

/** What a test build of a later minor sends after its hello (see SENDS_TEST_EXTENSIONS): a type over 12. */
export const TEST_EXTENSION_FRAME = [LAST_FRAME_TYPE + 1, { note: 'a frame type of a later minor version' }];

export type Metadata = Record<string, unknown>;
export interface PatternLists {
  messages: string[];
  events: string[];
}
export interface CallerIdentity {
  id: string;
  iid: string;
}

export type Frame =
  | { type: 1; id: number; pattern: string; data: unknown; metadata: Metadata | undefined }
  | { type: 2; pattern: string; data: unknown; metadata: Metadata | undefined }
  | { type: 3; id: number; value: unknown; last: boolean }
  | { type: 4; id: number; error: unknown }
  | { type: 5; id: number }
  | { type: 6; id: number }
  | { type: 7; id: number; reason: string }
  | { type: 8; id: number }
  | { type: 9; id: number; lists: PatternLists }
  | {
      type: 10;
      caller: CallerIdentity | undefined;
      maxFrameSize: number | undefined;
      /** The sender's protocol version; undefined when its hello states none (the current major then). */
      version: ProtocolVersion | undefined;
    }
  | { type: 11 | 12; id: number }
  /** A well-formed frame of a type this version does not know (from a later minor version). */
  | { type: 'unknown'; frameType: number };

/** Largest frame accepted unless configured (16 MiB): big enough for real payloads, small enough to bound memory. */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;
/** Pattern strings longer than this are refused as malformed. */
const MAX_PATTERN_LENGTH = 4096;

export function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

export function isPattern(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_PATTERN_LENGTH;
}

export function isMetadata(value: unknown): value is Metadata | undefined | null {
  return value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value));
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * Checks a decoded value against the known frame shapes; undefined when it is none of them (malformed).
 * A frame of a type over LAST_FRAME_TYPE is `{ type: 'unknown' }`, whatever follows its type.
 */
export function parseFrame(value: unknown): Frame | undefined {
  if (!Array.isArray(value) || value.length < 1) return undefined;
  const [type, a, b, c, d] = value as unknown[];
  if (isId(type) && type > LAST_FRAME_TYPE) return { type: 'unknown', frameType: type };
  if (value.length < 2) return undefined;
  switch (type) {
    case FrameType.REQUEST:
      if (!isId(a) || !isPattern(b) || !isMetadata(d) || value.length > 5) return undefined;
      return { type, id: a, pattern: b, data: c, metadata: d ?? undefined };
    case FrameType.EVENT:
      if (!isPattern(a) || !isMetadata(c) || value.length > 4) return undefined;
      return { type, pattern: a, data: b, metadata: c ?? undefined };
    case FrameType.NEXT:
      if (!isId(a) || value.length > 4) return undefined;
      return { type, id: a, value: b, last: c === true };
    case FrameType.ERROR:
      if (!isId(a) || value.length !== 3) return undefined;
      return { type, id: a, error: b };
    case FrameType.COMPLETE:
    case FrameType.CANCEL:
    case FrameType.DESCRIBE:
    case FrameType.PING:
    case FrameType.PONG:
      if (!isId(a) || value.length !== 2) return undefined;
      return { type, id: a };
    case FrameType.REFUSED:
      if (!isId(a) || typeof b !== 'string' || value.length !== 3) return undefined;
      return { type, id: a, reason: b };
    case FrameType.DESCRIPTION: {
      if (!isId(a) || value.length !== 3 || b === null || typeof b !== 'object') return undefined;
      const lists = b as Partial<PatternLists>;
      if (!isStringList(lists.messages) || !isStringList(lists.events)) return undefined;
      return { type, id: a, lists: { messages: lists.messages, events: lists.events } };
    }
    case FrameType.HELLO: {
      if (value.length !== 2 || a === null || typeof a !== 'object') return undefined;
      // Keys other than these (from a later minor version) are ignored.
      const hello = a as Partial<CallerIdentity> & { max?: unknown; v?: unknown };
      const max = hello.max;
      if (max !== undefined && !(isId(max) && max > 0)) return undefined;
      const version = hello.v === undefined ? undefined : versionFromArray(hello.v);
      if (hello.v !== undefined && version === undefined) return undefined;
      if (hello.id === undefined && hello.iid === undefined)
        return { type, caller: undefined, maxFrameSize: max, version };
      if (typeof hello.id !== 'string' || typeof hello.iid !== 'string') return undefined;
      if (hello.id.length > 256 || hello.iid.length > 256) return undefined;
      return { type, caller: { id: hello.id, iid: hello.iid }, maxFrameSize: max, version };
    }
    default:
      return undefined;
  }
}
