/** How a caller tells a stalled peer from a slow one on the data plane. */
export interface LivenessOptions {
  /** Milliseconds of silence from the peer, with requests outstanding, before it is sent a PING (default 250). */
  probeAfter: number;
  /** Milliseconds the PING may go unanswered (nothing at all arriving) before the peer is unresponsive (default 500). */
  answerWithin: number;
}

/**
 * With these, a peer that stops answering is unresponsive 750 ms after the last byte it sent (plus timer
 * lateness), so a frozen replica gets no new request within a second of its freeze. A peer whose event
 * loop lags by more than half a second is treated the same way: that is the point.
 */
export const LIVENESS_DEFAULTS: LivenessOptions = Object.freeze({ probeAfter: 250, answerWithin: 500 });

export interface LivenessHooks {
  /** Requests (and other exchanges) waiting for an answer from the peer. */
  outstanding(): number;
  /** Writes one PING carrying `nonce`. */
  ping(nonce: number): void;
  /** Told when the verdict changes. */
  changed(responsive: boolean): void;
}

/**
 * The liveness of one data-plane peer, seen from the caller. Only a connection that is waiting for
 * something is watched: once nothing has arrived from the peer for `probeAfter` ms it is sent a PING,
 * which its event loop answers with a PONG. If nothing at all arrives within `answerWithin` ms of the
 * PING, the peer is unresponsive (a frozen process, a blocked event loop, a hung host: the kernel still
 * ACKs, so TCP alone never says so). While unresponsive it is pinged every `answerWithin` ms whether or
 * not requests wait on it, and anything arriving from it (a PONG, a late reply) makes it responsive again.
 *
 * The verdict is taken after the event loop has polled its sockets once more (setImmediate), so a caller
 * that was itself stalled reads the answers already waiting in its kernel before it judges anyone.
 *
 * A PING queued behind this caller's own large upload is answered only once the upload is read; the
 * server reading it sends unasked PONGs meanwhile (READING_NOTICE_EVERY in data-plane-server.ts).
 */
export class PeerLiveness {
  responsive = true;
  pingsSent = 0;
  /** How many times the peer turned unresponsive. */
  lapses = 0;
  private lastHeard: number;
  private pingSentAt: number | undefined;
  private nonce = 0;
  private timer: NodeJS.Timeout | undefined;
  private verdict: NodeJS.Immediate | undefined;
  private stopped = false;

  constructor(
    private readonly options: LivenessOptions,
    private readonly hooks: LivenessHooks,
  ) {
    this.lastHeard = performance.now();
  }

  /** Something arrived from the peer: it is alive. Called for every chunk read, so kept cheap. */
  heard(): void {
    this.lastHeard = performance.now();
    this.pingSentAt = undefined;
    if (!this.responsive) {
      this.responsive = true;
      this.hooks.changed(true);
    }
  }

  /** A request now waits on the peer: watch it, counting silence from now if it was idle. */
  waiting(): void {
    if (this.timer !== undefined || this.verdict !== undefined || this.stopped) return;
    this.lastHeard = Math.max(this.lastHeard, performance.now());
    this.arm(this.options.probeAfter);
  }

  /** The connection is gone: no more timers. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.verdict !== undefined) clearImmediate(this.verdict);
    this.timer = undefined;
    this.verdict = undefined;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(this.check, Math.max(1, Math.ceil(delay)));
    this.timer.unref();
  }

  private readonly check = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    const now = performance.now();
    if (this.pingSentAt !== undefined) {
      const left = this.pingSentAt + this.options.answerWithin - now;
      if (left > 0) return this.arm(left);
      const sentAt = this.pingSentAt;
      this.verdict = setImmediate(() => this.judge(sentAt));
      return;
    }
    if (this.responsive && this.hooks.outstanding() === 0) return; // idle: nothing to watch
    const silent = now - this.lastHeard;
    if (silent < this.options.probeAfter) return this.arm(this.options.probeAfter - silent);
    this.sendPing(now);
  };

  private judge(sentAt: number): void {
    this.verdict = undefined;
    if (this.stopped) return;
    if (this.pingSentAt !== sentAt) {
      // Heard from meanwhile: back to watching silence.
      this.arm(this.options.probeAfter);
      return;
    }
    if (this.responsive) {
      this.responsive = false;
      this.lapses++;
      this.hooks.changed(false);
      if (this.stopped) return;
    }
    this.sendPing(performance.now());
  }

  private sendPing(now: number): void {
    this.nonce = this.nonce >= 0xffffffff ? 1 : this.nonce + 1;
    this.pingSentAt = now;
    this.pingsSent++;
    this.hooks.ping(this.nonce);
    this.arm(this.options.answerWithin);
  }
}
