// The network rule, enforced: tests, samples and benchmarks may send packets only to loopback
// (127.0.0.0/8, ::1), to multicast groups through interface 127.0.0.1, or to the loopback broadcast
// 127.255.255.255. A process inside a network namespace of its own (one a test created with `ip netns`)
// may send anywhere, since nothing it sends can leave that namespace.
//
// Installed in the Jest workers (test/setup/network-guard.ts) and in every child process started with
// `--import ./scripts/register-ts.js`. A send that breaks the rule never happens: it fails like a
// network error, is recorded, and the Jest hook fails the test that made it. Children append their
// violations to a file of the Jest worker they descend from, so the parent test fails too.
import dgram from 'node:dgram';
import net from 'node:net';
import { appendFileSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Shared through globalThis: Jest loads this file once for the setup and again for a test that imports it.
const shared = (globalThis[Symbol.for('kable.networkGuard')] ??= { installed: false, violations: [] });
const violations = shared.violations;
const multicastInterface = new WeakMap();

/** Where a watching process (a Jest worker) collects the violations of its descendants. */
export function reportFileOf(pid) {
  return join(tmpdir(), `kable-network-guard-${pid}.jsonl`);
}

export function watchMarkerOf(pid) {
  return join(tmpdir(), `kable-network-guard-${pid}.watching`);
}

// Jest sandboxes process.env, so a child cannot be told where to report: it walks up its ancestors
// instead and reports to the nearest one that watches.
function watchingAncestor() {
  let pid = process.ppid;
  for (let depth = 0; depth < 16 && pid > 1; depth++) {
    if (existsSync(watchMarkerOf(pid))) return pid;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

// The machine's own namespace is that of our topmost readable ancestor (PID 1's link is often not
// readable in containers). A process in another one was put there by a test (`ip netns exec`).
function inOwnNetworkNamespace() {
  try {
    const self = readlinkSync('/proc/self/ns/net');
    let top = self;
    let pid = process.ppid;
    for (let depth = 0; depth < 32 && pid > 0; depth++) {
      try {
        top = readlinkSync(`/proc/${pid}/ns/net`);
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        break;
      }
    }
    return self !== top;
  } catch {
    return false;
  }
}

const isolated = inOwnNetworkNamespace();

function ipv4Octets(address) {
  if (net.isIPv4(address)) return address.split('.').map(Number);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1].split('.').map(Number) : undefined;
}

/** Why sending to `address` breaks the rule, or undefined when it is allowed. */
export function refusal(address, socket) {
  if (isolated) return undefined;
  if (address === undefined || address === null || address === 'localhost' || address === '::1')
    return undefined;
  const octets = ipv4Octets(String(address));
  if (octets === undefined) return `${address} is not a loopback address`;
  if (octets[0] === 127) return undefined;
  if (octets[0] >= 224 && octets[0] <= 239) {
    const through = socket ? multicastInterface.get(socket) : undefined;
    return through === '127.0.0.1'
      ? undefined
      : `multicast to ${address} without setMulticastInterface('127.0.0.1')`;
  }
  return `${address} is outside 127.0.0.0/8`;
}

function record(kind, address, reason) {
  const violation = { kind, address: String(address), reason, pid: process.pid };
  violations.push(violation);
  const watcher = watchingAncestor();
  const report = watcher === undefined ? undefined : reportFileOf(watcher);
  if (report) {
    try {
      appendFileSync(report, JSON.stringify(violation) + '\n');
    } catch {
      // The in-process list still has it.
    }
  }
  process.stderr.write(`[network-guard] blocked ${kind} to ${address}: ${reason}\n`);
  const error = new Error(`network guard: ${kind} to ${address} blocked (${reason})`);
  error.code = 'EKABLEGUARD';
  return error;
}

export function installNetworkGuard() {
  if (shared.installed) return;
  shared.installed = true;
  const socketProto = dgram.Socket.prototype;

  const setMulticastInterface = socketProto.setMulticastInterface;
  socketProto.setMulticastInterface = function (address) {
    multicastInterface.set(this, address);
    return setMulticastInterface.call(this, address);
  };

  const send = socketProto.send;
  socketProto.send = function (...args) {
    // send(msg, [offset, length,] port, address[, callback]); a connected socket passes no address.
    const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const rest = callback ? args.slice(0, -1) : args;
    const address = rest.length === 3 || rest.length === 5 ? rest[rest.length - 1] : undefined;
    const reason = refusal(address, this);
    if (reason !== undefined) {
      const error = record('udp send', address, reason);
      if (callback) process.nextTick(callback, error);
      return;
    }
    return send.apply(this, args);
  };

  const udpConnect = socketProto.connect;
  socketProto.connect = function (port, address, callback) {
    const target = typeof address === 'string' ? address : undefined;
    const reason = refusal(target, this);
    if (reason !== undefined) throw record('udp connect', target, reason);
    return udpConnect.call(this, port, address, callback);
  };

  const tcpConnect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (...args) {
    let host;
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    if (first && typeof first === 'object') {
      if (first.path === undefined) host = first.host;
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      host = typeof args[1] === 'string' ? args[1] : undefined;
    }
    const reason = refusal(host, undefined);
    if (reason !== undefined) {
      const error = record('tcp connect', host, reason);
      process.nextTick(() => this.destroy(error));
      return this;
    }
    return tcpConnect.apply(this, args);
  };
}

/** Returns and forgets the violations seen so far in this process. */
export function takeViolations() {
  return violations.splice(0, violations.length);
}
