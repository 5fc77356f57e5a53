import { describe, expect, it } from '@jest/globals';
import type { ReplyChannel } from '../../lib/data-plane/data-plane-server.js';
import { replyDirectly } from '../../lib/nest/direct-reply.js';

/** A channel that records what the reply did and resolves once it ended. */
function recordingChannel(): { channel: ReplyChannel; ended: Promise<string> } {
  let end: (outcome: string) => void = () => undefined;
  const ended = new Promise<string>((resolve) => (end = resolve));
  let closed = false;
  const channel: ReplyChannel = {
    next: (_value, last) => {
      if (last) end('value');
    },
    error: (error) => {
      closed = true;
      end(`error: ${(error as { message?: string }).message ?? JSON.stringify(error)}`);
    },
    complete: () => {
      closed = true;
      end('complete');
    },
    refuse: () => end('refused'),
    get closed() {
      return closed;
    },
  };
  return { channel, ended };
}

describe('replyDirectly', () => {
  it('answers an error when the resolved value throws as soon as it is looked at', async () => {
    // A lazy ORM row gone stale: deciding whether it is an Observable already reads a property. Before,
    // the throw escaped the promise callback as an unhandled rejection (which ends a Node process) and
    // the caller never heard back.
    const row = {
      get lift(): unknown {
        throw new Error('the row is detached');
      },
    };
    const { channel, ended } = recordingChannel();
    replyDirectly(Promise.resolve(row), channel);
    expect(await ended).toBe('error: {}');
  });
});
