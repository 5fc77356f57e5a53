import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { refusal, reportFileOf, takeViolations } from '../scripts/network-guard.js';

// A documentation-only address (RFC 5737) stands for "outside loopback".
const OUTSIDE = '192.0.2.1';

function sendUdp(socket: dgram.Socket, address: string, port = 9): Promise<Error | null> {
  return new Promise((resolve) => socket.send(Buffer.from('x'), port, address, (error) => resolve(error)));
}

// Every send below that the guard must block is also one that cannot leave the machine if the guard
// failed: UDP to port 0 (Node throws before any system call), TCP from 127.0.0.1 (the kernel refuses
// to route a loopback source elsewhere, EINVAL). A broken guard fails the test, and sends nothing.
const NOWHERE = 0;

describe('network guard', () => {
  it('allows loopback, loopback broadcast and multicast through 127.0.0.1 only', () => {
    expect(refusal('127.0.0.1')).toBeUndefined();
    expect(refusal('127.3.4.5')).toBeUndefined();
    expect(refusal('127.255.255.255')).toBeUndefined();
    expect(refusal('::1')).toBeUndefined();
    expect(refusal('255.255.255.255')).toMatch(/outside 127/);
    expect(refusal('10.1.2.3')).toMatch(/outside 127/);
    expect(refusal('239.255.42.99')).toMatch(/multicast/);
    expect(refusal('example.com')).toMatch(/not a loopback/);
  });

  it('blocks and records a UDP send to 255.255.255.255, and lets loopback through', async () => {
    expect(refusal('255.255.255.255')).toBeDefined();
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const blocked = await sendUdp(socket, '255.255.255.255', NOWHERE);
    const allowed = await sendUdp(socket, '127.0.0.1');
    socket.close();
    expect((blocked as NodeJS.ErrnoException | null)?.code).toBe('EKABLEGUARD');
    expect(allowed).toBeNull();
    expect(takeViolations()).toEqual([
      expect.objectContaining({ kind: 'udp send', address: '255.255.255.255' }),
    ]);
  });

  it('blocks multicast unless the interface is 127.0.0.1', async () => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => socket.bind(0, resolve));
    expect(await sendUdp(socket, '239.255.42.98', NOWHERE)).not.toBeNull();
    socket.setMulticastInterface('127.0.0.1');
    expect(await sendUdp(socket, '239.255.42.98')).toBeNull();
    socket.close();
    expect(takeViolations()).toHaveLength(1);
  });

  it('blocks a TCP connection outside loopback before it is attempted', async () => {
    expect(refusal(OUTSIDE)).toBeDefined();
    const error = await new Promise<NodeJS.ErrnoException>((resolve) =>
      net.connect({ host: OUTSIDE, port: 9, localAddress: '127.0.0.1' }).on('error', resolve),
    );
    expect(error.code).toBe('EKABLEGUARD');
    expect(takeViolations()).toEqual([expect.objectContaining({ kind: 'tcp connect', address: OUTSIDE })]);
  });

  it('catches a child process breaking the rule and reports it to the parent', async () => {
    expect(refusal(OUTSIDE)).toBeDefined();
    const report = reportFileOf(process.pid);
    const child = spawn(
      process.execPath,
      ['--import', './scripts/register-ts.js', 'test/support/fixtures/send-outside.ts'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => child.on('exit', resolve));
    expect(output.trim()).toBe('blocked EKABLEGUARD');
    expect(existsSync(report)).toBe(true);
    const lines = readFileSync(report, 'utf8').trim().split('\n');
    rmSync(report, { force: true });
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ kind: 'udp send', address: OUTSIDE, pid: child.pid }),
    ]);
  });
});
