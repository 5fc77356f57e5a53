import type { CustomTransportStrategy, MessageHandler, WritePacket } from '@nestjs/microservices';
import { Server } from '@nestjs/microservices';
import { Observable, finalize } from 'rxjs';
import type { ConnectionDeadlines } from '../data-plane/connection-deadlines.js';
import {
  DEFAULT_MAX_CONNECTIONS,
  DataPlaneServer,
  MIN_WRITE_HIGH_WATER_MARK,
  type InboundRequest,
  type ReplyChannel,
} from '../data-plane/data-plane-server.js';
import { kable } from '../kable.js';
import { KableOptionsError } from '../node/errors.js';
import { milliseconds } from '../node/validate-options.js';
import { byteSize } from './validate-client-options.js';
import type { KableNode, KableNodeEvents } from '../node/kable-node.js';
import { loadTelemetry, telemetry } from '../telemetry/telemetry.js';
import { replyDirectly } from './direct-reply.js';
import { replyError } from './error-reply.js';
import { channelFor } from './secure-data-plane.js';
import { KABLE_TRANSPORT, NO_MESSAGE_HANDLER } from './kable.constants.js';
import { KableContext, servingNode, type KableCaller, type KableServingNode } from './kable.context.js';
import {
  SERVER_DEFAULTS,
  nodeOptionsOf,
  rejectUnknownOptions,
  type KableServerOptions,
} from './kable.options.js';
import { patternDigest, type PatternCatalogEntry } from './pattern-digest.js';

/** The server's status events: connected once it serves, disconnected once closed. */
export type KableServerStatus = 'connected' | 'disconnected';

type Listener = (...args: any[]) => void;

/**
 * Nest microservice strategy: serves this app's message and event patterns on the Kable data plane and
 * announces them through the node, which goes RUNNING once it can serve.
 *
 * new KableServer({ id: 'math', replica: true })
 */
export class KableServer
  extends Server<Record<keyof KableNodeEvents, Listener>, KableServerStatus>
  implements CustomTransportStrategy
{
  override readonly transportId = KABLE_TRANSPORT;
  /** The node this server announces itself with (its own, or the shared one given as `node`). */
  readonly node: KableNode;
  private readonly ownsNode: boolean;
  private readonly dataPlane: DataPlaneServer;
  private catalog: PatternCatalogEntry = { messages: [], events: [] };
  private serving: KableServingNode | undefined;
  private listening = false;
  private closing: Promise<void> | undefined;
  /** Stops this server's metrics (OpenTelemetry installed only). */
  private unobserve: (() => void) | undefined;
  /** Nest's own no-op start hook: while it is still in place (and no end hook is set), replies go direct. */
  private readonly defaultStartHook: unknown;

  constructor(private readonly options: KableServerOptions) {
    super();
    this.defaultStartHook = (this as unknown as { onProcessingStartHook?: unknown }).onProcessingStartHook;
    if (options === null || typeof options !== 'object') {
      throw new KableOptionsError("KableServer needs options, such as new KableServer({ id: 'math' }).");
    }
    rejectUnknownOptions(options, 'KableServer');
    for (const name of ['drainTimeout', 'leaveGrace'] as const) {
      const value = options[name];
      if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
        throw new KableOptionsError(
          `KableServer option "${name}" must be a non-negative integer of milliseconds.`,
        );
      }
      if (value) milliseconds(name, value, 'KableServer option ');
    }
    for (const name of ['maxConnections', 'maxInFlightPerConnection', 'maxConnectionsPerAddress'] as const) {
      const value = options[name];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new KableOptionsError(`KableServer option "${name}" must be a positive integer.`);
      }
    }
    const deadlines = connectionDeadlines(options);
    if (options.node !== undefined) {
      this.node = options.node;
      this.ownsNode = false;
    } else {
      if (options.id === undefined) {
        throw new KableOptionsError(
          "KableServer needs an `id`, the service name: new KableServer({ id: 'math' }).",
        );
      }
      this.node = kable(options.id, nodeOptionsOf(options));
      this.ownsNode = true;
    }
    this.dataPlane = new DataPlaneServer(
      {
        // With OpenTelemetry, each request and event runs inside its span (see lib/telemetry).
        request: (request, reply) =>
          telemetry.active === undefined
            ? this.onRequest(request, reply)
            : telemetry.active.inboundRequest(request, reply, this.node, (traced) =>
                this.onRequest(request, traced),
              ),
        event: (pattern, data, metadata, caller) =>
          telemetry.active === undefined
            ? this.onEvent(pattern, data, metadata, caller)
            : telemetry.active.inboundEvent(pattern, metadata, caller, this.node, () =>
                this.onEvent(pattern, data, metadata, caller),
              ),
        describe: () => this.catalog,
      },
      {
        ...dataPlaneSizes(options),
        ...deadlines,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
        ...(options.maxInFlightPerConnection === undefined
          ? {}
          : { maxInFlightPerConnection: options.maxInFlightPerConnection }),
        createServer: channelFor(this.node, options.tls).createServer,
      },
    );
    this.node.addStats('dataPlane', () => this.dataPlane.stats());
    this.dataPlane.on('warning', (warning: { code: string; message: string }) =>
      this.logger.warn?.(`${warning.code}: ${warning.message}`),
    );
    this.node.on('warning', (warning) => this.logger.warn?.(`${warning.code}: ${warning.message}`));
  }

  /** Starts the data plane, then joins the cluster and goes RUNNING. */
  listen(callback: (error?: unknown) => void): void {
    this.start().then(
      () => callback(),
      (error: unknown) => callback(error),
    );
  }

  /**
   * Leaves gracefully: announces STOPPED at once (new requests are refused and retried elsewhere),
   * lets requests in flight finish (up to drainTimeout), stays reachable for leaveGrace so every peer
   * has seen it leave, then announces DOWN and closes the data plane.
   */
  close(): Promise<void> {
    this.closing ??= this.leave();
    return this.closing;
  }

  private async leave(): Promise<void> {
    const state = this.node.state.state;
    if (this.listening && state !== 'DOWN') {
      if (state !== 'STOPPED') this.node.stop('shutting down');
      const drainTimeout = this.options.drainTimeout ?? SERVER_DEFAULTS.drainTimeout;
      const leaveGrace = this.options.leaveGrace ?? SERVER_DEFAULTS.leaveGrace;
      const [drained] = await Promise.all([
        this.dataPlane.drain(drainTimeout),
        new Promise((resolve) => setTimeout(resolve, leaveGrace)),
      ]);
      if (!drained) {
        this.logger.warn?.(
          `${this.dataPlane.inFlight} request(s) still running after drainTimeout (${drainTimeout} ms).`,
        );
      }
    }
    this.unobserve?.();
    if (this.ownsNode) await this.node.down('closed');
    await this.dataPlane.close();
    this._status$.next('disconnected');
  }

  on(event: keyof KableNodeEvents, callback: Listener): void {
    this.node.on(event, callback as never);
  }

  /** The node this server serves on. */
  unwrap<T = KableNode>(): T {
    return this.node as T;
  }

  private async start(): Promise<void> {
    this.catalog = this.readCatalog();
    await loadTelemetry();
    const host = this.options.host ?? this.node.host;
    const address = await this.dataPlane.listen(host, this.options.port ?? this.node.port);
    this.node.setAddress(address.host, address.port);
    this.node.setPatterns(patternDigest(this.catalog));
    this.serving = servingNode(this.node);
    this.listening = true;
    try {
      await this.node.join(true);
      // A shared node may have joined earlier (UP, or RUNNING for its clients): now it can serve.
      if (this.node.state.state === 'UP') this.node.start();
    } catch (error) {
      await this.dataPlane.close();
      throw error;
    }
    this.unobserve ??= telemetry.active?.observe(this.node);
    this._status$.next('connected');
  }

  private readCatalog(): PatternCatalogEntry {
    const messages: string[] = [];
    const events: string[] = [];
    for (const [pattern, handler] of this.messageHandlers)
      (handler.isEventHandler ? events : messages).push(pattern);
    return { messages, events };
  }

  private handlerFor(pattern: string): MessageHandler | undefined {
    // Clients send normalized routes, so the direct lookup is the hot path; Nest's parse is the fallback.
    return this.messageHandlers.get(pattern) ?? this.getHandlerByPattern(pattern) ?? undefined;
  }

  private onRequest(request: InboundRequest, reply: ReplyChannel): (() => void) | void {
    const state = this.node.state.state;
    if (state !== 'RUNNING') {
      reply.refuse(`node ${this.node.id} is ${state}`);
      return;
    }
    const handler = this.handlerFor(request.pattern);
    if (handler === undefined || handler.isEventHandler) {
      reply.error(NO_MESSAGE_HANDLER);
      return;
    }
    const context = new KableContext([
      request.pattern,
      request.metadata,
      request.caller ?? {},
      this.serving ?? servingNode(this.node),
      this.node,
    ]);
    if (this.withoutHooks()) {
      try {
        return replyDirectly(handler(request.data, context), reply);
      } catch (error) {
        replyError(reply, error);
        return;
      }
    }
    // Cancelling unsubscribes the handler's stream; a flag and one wrapper are cheaper than a Subject.
    let cancelled = false;
    let stop: (() => void) | undefined;
    const produce = async (): Promise<Observable<unknown>> =>
      cancellable(this.transformToObservable(await handler(request.data, context)), (unsubscribe) => {
        if (cancelled) unsubscribe();
        else stop = unsubscribe;
      });
    const respond = (packet: WritePacket): void => {
      if (reply.closed) return;
      // Nest's `send` marks an error packet disposed too: whatever it carries, it ends the reply.
      if ('err' in packet) replyError(reply, packet.err);
      else if (packet.isDisposed) {
        if (packet.response !== undefined) reply.next(packet.response, true);
        else reply.complete();
      } else reply.next(packet.response);
    };
    this.process(context, produce, respond, reply);
    return () => {
      cancelled = true;
      stop?.();
    };
  }

  /** True when nobody (such as @nestjs/observe) set processing hooks: Nest's generic path adds nothing then. */
  private withoutHooks(): boolean {
    const self = this as unknown as { onProcessingStartHook?: unknown; onProcessingEndHook?: unknown };
    return self.onProcessingStartHook === this.defaultStartHook && self.onProcessingEndHook === undefined;
  }

  /** Nest 12 runs requests through `handleRequest` (hooks for @nestjs/observe); Nest 11 through the start/end hooks. */
  private process(
    context: KableContext,
    produce: () => Promise<Observable<unknown>>,
    respond: (packet: WritePacket) => void,
    reply: ReplyChannel,
  ): void {
    const self = this as unknown as {
      handleRequest?: (c: KableContext, p: typeof produce, r: typeof respond) => unknown;
      onProcessingStartHook?: (transport: symbol, c: KableContext, done: () => Promise<unknown>) => unknown;
      onProcessingEndHook?: (transport: symbol, c: KableContext) => void;
    };
    const fail = (error: unknown) => {
      if (!reply.closed) replyError(reply, error);
    };
    if (typeof self.handleRequest === 'function') {
      Promise.resolve(self.handleRequest(context, produce, respond)).catch(fail);
      return;
    }
    // As Nest 12's runWithProcessingHooks: the end hook runs exactly once, also when the handler rejects.
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      self.onProcessingEndHook?.(this.transportId, context);
    };
    const run = async () => {
      let stream: Observable<unknown>;
      try {
        stream = await produce();
      } catch (error) {
        end();
        throw error;
      }
      this.send(stream.pipe(finalize(end)), respond);
    };
    const started =
      typeof self.onProcessingStartHook === 'function'
        ? self.onProcessingStartHook(this.transportId, context, run)
        : run();
    Promise.resolve(started).catch(fail);
  }

  private onEvent(
    pattern: string,
    data: unknown,
    metadata: Record<string, unknown> | undefined,
    caller: KableCaller | undefined,
  ): Promise<unknown> {
    const context = new KableContext([
      pattern,
      metadata,
      caller ?? {},
      this.serving ?? servingNode(this.node),
      this.node,
    ]);
    const handled = Promise.resolve(
      this.handleEvent(pattern, { pattern, data, metadata: metadata as never }, context),
    );
    handled.catch((error) => this.logger.error(`Event handler for ${pattern} failed: ${String(error)}`));
    return handled;
  }
}

/** Mirrors `source`, handing out a function that unsubscribes it (the caller cancelled the request). */
function cancellable<T>(source: Observable<T>, expose: (unsubscribe: () => void) => void): Observable<T> {
  return new Observable<T>((subscriber) => {
    const subscription = source.subscribe(subscriber);
    expose(() => {
      subscription.unsubscribe();
      subscriber.complete();
    });
    return subscription;
  });
}

/** The connection deadlines and per-address cap given (see connection-deadlines.ts), checked. */
function connectionDeadlines(options: KableServerOptions): Partial<ConnectionDeadlines> {
  const given: Partial<ConnectionDeadlines> = {};
  for (const name of ['helloTimeout', 'partialFrameTimeout', 'handshakeTimeout', 'idleTimeout'] as const) {
    const value = options[name];
    if (value !== undefined) given[name] = milliseconds(name, value, 'KableServer option ');
  }
  const perAddress = options.maxConnectionsPerAddress;
  if (perAddress !== undefined) {
    const max = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (perAddress > max) {
      throw new KableOptionsError(
        `KableServer option "maxConnectionsPerAddress" (${perAddress}) must be at most maxConnections (${max}); ` +
          'one address should not be able to take every connection.',
      );
    }
    given.maxConnectionsPerAddress = perAddress;
  }
  return given;
}

/** The data plane's byte limits, checked (a typo'd size would otherwise surface as dropped connections). */
type DataPlaneSizes = Partial<Record<'maxFrameSize' | 'writeHighWaterMark' | 'maxStreamBacklog', number>>;

function dataPlaneSizes(options: KableServerOptions): DataPlaneSizes {
  const sizes: DataPlaneSizes = {};
  for (const name of ['maxFrameSize', 'writeHighWaterMark', 'maxStreamBacklog'] as const) {
    const min = name === 'maxFrameSize' ? 1024 : MIN_WRITE_HIGH_WATER_MARK;
    const value = byteSize('KableServer', name, options[name], min);
    if (value !== undefined) sizes[name] = value;
  }
  return sizes;
}
