import { afterEach, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { EndOfTurn, type TurnWaiter } from '../../lib/node/end-of-turn.js';

const waiter = (run: () => void): TurnWaiter => ({ endOfTurn: run });

describe('EndOfTurn', () => {
  const closing: (Server | Socket)[] = [];
  afterEach(async () => {
    // Sockets first: a server's close waits for its connections to end.
    const items = closing.splice(0);
    for (const item of items) if ('destroy' in item) item.destroy();
    for (const item of items) if (!('destroy' in item)) await new Promise((resolve) => item.close(resolve));
  });

  it('runs a waiter added on one socket read after the other sockets readable in the same turn are read', async () => {
    // Two connections over real loopback TCP; the server writes to both in one tick, so this side's
    // next poll finds both readable and reads them one after the other, in one turn.
    const server = createServer();
    closing.push(server);
    const accepted: Socket[] = [];
    server.on('connection', (socket) => {
      closing.push(socket);
      accepted.push(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const sockets = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
    closing.push(...sockets);
    await Promise.all(sockets.map((socket) => once(socket, 'connect')));
    while (accepted.length < 2) await once(server, 'connection');
    const turn = new EndOfTurn((error) => {
      throw error;
    });
    const read: number[] = [];
    const seenByWaiter: number[][] = [];
    let readsAtFirstMicrotask: number[] | undefined;
    sockets.forEach((socket, i) =>
      socket.on('data', () => {
        read.push(i);
        if (read.length > 1) return;
        // The first read of the turn: a microtask still sees one socket read, the waiter both.
        queueMicrotask(() => (readsAtFirstMicrotask = [...read]));
        turn.add(waiter(() => seenByWaiter.push([...read])));
      }),
    );
    for (const socket of accepted) socket.write('reply');
    await new Promise<void>((resolve) => {
      const check = () => (seenByWaiter.length > 0 ? resolve() : setImmediate(check));
      setImmediate(check);
    });
    expect(readsAtFirstMicrotask).toHaveLength(1);
    expect(seenByWaiter).toEqual([read]);
    expect([...read].sort()).toEqual([0, 1]);
  });

  it('runs each waiter once, in order, on one immediate per turn; refuses past its cap; reports a throw and runs the rest', async () => {
    const errors: unknown[] = [];
    const turn = new EndOfTurn((error) => errors.push(error), 3);
    const ran: string[] = [];
    expect(turn.add(waiter(() => ran.push('a')))).toBe(true);
    expect(
      turn.add(
        waiter(() => {
          throw new Error('b failed');
        }),
      ),
    ).toBe(true);
    expect(turn.add(waiter(() => ran.push('c')))).toBe(true);
    expect(turn.add(waiter(() => ran.push('d')))).toBe(false);
    expect(turn.size).toBe(3);
    await new Promise((resolve) => setImmediate(resolve));
    expect({ ran, errors: errors.map(String), size: turn.size }).toEqual({
      ran: ['a', 'c'],
      errors: ['Error: b failed'],
      size: 0,
    });
    // The next turn's waiters: a list of their own, run on the next immediate.
    expect(turn.add(waiter(() => ran.push('e')))).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toEqual(['a', 'c', 'e']);
  });

  it('run() runs the waiters at once (as a client closing does), and each only once', async () => {
    const turn = new EndOfTurn(() => undefined);
    let runs = 0;
    turn.add(waiter(() => runs++));
    turn.run();
    expect(runs).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(runs).toBe(1);
    expect(turn.size).toBe(0);
  });

  it("tells a waiter its replica replied once the read is done (a microtask), one look for the read's replies, none for another replica's", async () => {
    const turn = new EndOfTurn(() => undefined);
    const looks: string[] = [];
    const waiterFor = (name: string, home: string): TurnWaiter => ({
      home,
      homeReplied: () => looks.push(name),
      endOfTurn: () => looks.push(`${name} at the end of the turn`),
    });
    // No one waits: nothing scheduled.
    turn.replied('a');
    await Promise.resolve();
    expect(looks).toEqual([]);
    turn.add(waiterFor('for a', 'a'));
    turn.add(waiterFor('for b', 'b'));
    // Three replies from a in one read: one look, after the read (its synchronous part) is done.
    turn.replied('a');
    turn.replied('a');
    turn.replied('a');
    expect(looks).toEqual([]);
    await Promise.resolve();
    expect(looks).toEqual(['for a']);
    turn.replied('c');
    await Promise.resolve();
    expect(looks).toEqual(['for a']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(looks).toEqual(['for a', 'for a at the end of the turn', 'for b at the end of the turn']);
  });

  it('holds a write only while requests wait, and lets it go once, after the waiters have sent theirs', async () => {
    const turn = new EndOfTurn(() => undefined);
    const order: string[] = [];
    // No one waits: the write is not held (the writer sends it at the end of the tick, as always).
    expect(turn.hold(() => order.push('unheld write'), 'replica-b')).toBe(false);
    turn.add(waiter(() => order.push('waiter sends')));
    expect(turn.hold(() => order.push('held write'), 'replica-b')).toBe(true);
    expect(order).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['waiter sends', 'held write']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['waiter sends', 'held write']);
  });

  it('does not hold a write to a replica that a request of the turn waits for room at, until the turn ends', async () => {
    const turn = new EndOfTurn(() => undefined);
    const order: string[] = [];
    turn.add({ endOfTurn: () => order.push('waiter for a looks again'), home: 'replica-a' });
    // Replica a is over its limit: its requests leave now (the writer's own end of tick), not held.
    expect(turn.hold(() => order.push('write to a'), 'replica-a')).toBe(false);
    expect(turn.hold(() => order.push('write to b'), 'replica-b')).toBe(true);
    // A waiter with no replica of its own holds writes to every replica but a, as before.
    turn.add(waiter(() => order.push('waiter with no replica')));
    expect(turn.hold(() => order.push('write to c'), 'replica-c')).toBe(true);
    expect(turn.hold(() => order.push('write to a'), 'replica-a')).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['waiter for a looks again', 'waiter with no replica', 'write to b', 'write to c']);
    // The next turn starts afresh: a waiter for b now, so a's writes are held and b's are not.
    turn.add({ endOfTurn: () => order.push('waiter for b looks again'), home: 'replica-b' });
    expect(turn.hold(() => order.push('write to a, next turn'), 'replica-a')).toBe(true);
    expect(turn.hold(() => order.push('write to b, next turn'), 'replica-b')).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order.slice(4)).toEqual(['waiter for b looks again', 'write to a, next turn']);
  });

  it('refuses a cap that is not a whole number of at least 1', () => {
    expect(() => new EndOfTurn(() => undefined, 0)).toThrow(/at least 1/);
    expect(() => new EndOfTurn(() => undefined, 1.5)).toThrow(/at least 1/);
  });
});
