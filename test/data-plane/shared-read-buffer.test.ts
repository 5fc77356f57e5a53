import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import net from 'node:net';
import { rehome, SHARED_READ_BUFFER_SIZE } from '../../lib/data-plane/shared-read-buffer.js';

describe('shared read buffer', () => {
  it('reads an accepted connection into one buffer, writes and ends as usual, and settles the server count', async () => {
    const sent = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 31) & 0xff;
    const buffers = new Set<Buffer>();
    const received: Buffer[] = [];
    let rehomed: net.Socket | undefined;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      rehomed = rehome(socket, (bytes, length) => {
        buffers.add(bytes);
        received.push(Buffer.from(bytes.subarray(0, length)));
      });
      rehomed?.on('end', () => rehomed!.end(`got ${received.reduce((sum, b) => sum + b.length, 0)}`));
      rehomed?.resume();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    client.end(sent);
    await once(client, 'close');

    expect(rehomed).toBeDefined();
    expect(answer).toBe(`got ${sent.length}`);
    expect(Buffer.concat(received).equals(sent)).toBe(true);
    // Every read landed in the same memory: no buffer per read.
    expect(received.length).toBeGreaterThan(1);
    expect(buffers.size).toBe(1);
    expect([...buffers][0].length).toBe(SHARED_READ_BUFFER_SIZE);
    expect(rehomed!.bytesRead).toBe(sent.length);
    // The socket Node made at accept is let go too: the server counts no connection and closes.
    if (!rehomed!.destroyed) await once(rehomed!, 'close');
    const count = await new Promise<number>((resolve, reject) =>
      server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
    );
    expect(count).toBe(0);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
