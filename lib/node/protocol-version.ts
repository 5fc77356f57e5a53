/**
 * The version of Kable's wire protocol (data plane frames and discovery adverts), defined here and
 * nowhere else. Both planes carry it: every advert, and the HELLO each side sends first.
 *
 * Rule: the same major version interoperates, whatever the minors (a minor may only add frame types,
 * HELLO keys and advert fields, which an older peer ignores and counts); a different major does not. A
 * caller never sends requests to a node of another major: it lists it as incompatible and waits for (or
 * fails over to) nodes of its own. See docs/protocol.md.
 */
export interface ProtocolVersion {
  /** Nodes of different majors do not talk: each lists the other as incompatible and never routes to it. */
  readonly major: number;
  /** Within one major, a later minor may add frame types and advert fields that earlier ones ignore. */
  readonly minor: number;
}

/** Largest major or minor number on the wire (both are MessagePack unsigned integers). */
export const MAX_VERSION_NUMBER = 0xffff;

/** What this release speaks. */
const RELEASED: ProtocolVersion = { major: 1, minor: 0 };

/**
 * Set to "major.minor", makes this process speak that version instead: for tests that run a cluster of
 * mixed versions from the same sources (never set it in production; nodes of another major are not
 * sent requests). Read here only, once, when the library loads.
 */
export const PROTOCOL_VERSION_VARIABLE = 'KABLE_TEST_PROTOCOL_VERSION';

function fromEnvironment(): ProtocolVersion | undefined {
  const text = process.env[PROTOCOL_VERSION_VARIABLE];
  if (text === undefined || text === '') return undefined;
  const match = /^(\d{1,5})\.(\d{1,5})$/.exec(text);
  const version = match === null ? undefined : versionFromArray([Number(match[1]), Number(match[2])]);
  if (version === undefined)
    throw new Error(
      `${PROTOCOL_VERSION_VARIABLE}="${text}" is not a version: write it as major.minor, e.g. 1.1.`,
    );
  return version;
}

/** What this process speaks: this release's version, unless a test overrides it. */
export const PROTOCOL_VERSION: ProtocolVersion = Object.freeze(fromEnvironment() ?? RELEASED);

/**
 * True when a test made this process speak a later minor version than this release: it then also sends
 * what such a version may add and this release does not know, one frame type after each hello
 * (TEST_EXTENSION_FRAME) and one advert field, so a mixed-version cluster test runs against a real
 * difference, not just a number.
 */
export const SENDS_TEST_EXTENSIONS =
  PROTOCOL_VERSION.major === RELEASED.major && PROTOCOL_VERSION.minor > RELEASED.minor;

/** Same major: the two can talk. A peer that states no version is taken as the current major. */
export function isCompatible(version: ProtocolVersion | undefined): boolean {
  return version === undefined || version.major === PROTOCOL_VERSION.major;
}

/** As written on the wire: `[major, minor]`. */
export function versionToArray(version: ProtocolVersion): [number, number] {
  return [version.major, version.minor];
}

/** `[major, minor]`, two whole numbers up to MAX_VERSION_NUMBER; undefined for anything else. */
export function versionFromArray(value: unknown): ProtocolVersion | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [major, minor] = value as unknown[];
  if (!isVersionNumber(major) || !isVersionNumber(minor)) return undefined;
  return { major, minor };
}

function isVersionNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_VERSION_NUMBER;
}

/** "v1.0": how versions are named in messages, stats and tables. */
export function formatVersion(version: ProtocolVersion): string {
  return `v${version.major}.${version.minor}`;
}
