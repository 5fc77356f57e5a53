import {
  Inject,
  Module,
  type DynamicModule,
  type FactoryProvider,
  type ModuleMetadata,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { kable } from '../kable.js';
import { KableOptionsError } from '../node/errors.js';
import { KableNode } from '../node/kable-node.js';
import type { KableOptions } from '../node/options.js';
import { KABLE_NODE } from './kable.constants.js';

/** Options of `KableModule.forRoot()`: the node options, its id, and when it joins. */
export interface KableModuleOptions extends KableOptions {
  /** Service id of the process's node. */
  id: string;
  /** Join the cluster when the app boots (default true); otherwise the first server or client joins it. */
  joinOnBootstrap?: boolean;
}

/** Options of `KableModule.forRootAsync()`: a factory of KableModuleOptions. */
export interface KableModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Returns the module options; gets the providers listed in `inject`. */
  useFactory: (...args: any[]) => KableModuleOptions | Promise<KableModuleOptions>;
  /** Providers passed to `useFactory`. */
  inject?: FactoryProvider['inject'];
}

const KABLE_MODULE_OPTIONS = Symbol.for('nestjs-kable:module-options');

function createNode(options: KableModuleOptions): KableNode {
  if (options === null || typeof options !== 'object' || typeof options.id !== 'string') {
    throw new KableOptionsError("KableModule.forRoot needs an id: KableModule.forRoot({ id: 'gateway' }).");
  }
  const { id, joinOnBootstrap: _join, ...nodeOptions } = options;
  return kable(id, nodeOptions);
}

/**
 * Provides the process's one KableNode (inject it with `KableNode` or `@Inject(KABLE_NODE)`), so a hybrid
 * app's KableServer and KableClientProxy share one socket, one registry and one identity:
 *
 * app.connectMicroservice({ strategy: new KableServer({ node: app.get(KableNode) }) })
 * ClientsModule.registerAsync([{ name: 'MATH', inject: [KableNode],
 *   useFactory: (node: KableNode) => ({ customClass: KableClientProxy, options: { node, target: 'math' } }) }])
 *
 * The node joins when the app boots and leaves (announcing DOWN) when it shuts down.
 */
@Module({})
export class KableModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    @Inject(KABLE_NODE) private readonly node: KableNode,
    @Inject(KABLE_MODULE_OPTIONS) private readonly options: KableModuleOptions,
  ) {}

  /** Provides the process's one node (as KableNode and KABLE_NODE), made from these options. */
  static forRoot(options: KableModuleOptions): DynamicModule {
    return KableModule.withProviders([
      { provide: KABLE_MODULE_OPTIONS, useValue: options },
      { provide: KABLE_NODE, useFactory: createNode, inject: [KABLE_MODULE_OPTIONS] },
    ]);
  }

  /** As forRoot(), with options from a factory (configuration, secrets). */
  static forRootAsync(options: KableModuleAsyncOptions): DynamicModule {
    return {
      ...KableModule.withProviders([
        { provide: KABLE_MODULE_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] },
        { provide: KABLE_NODE, useFactory: createNode, inject: [KABLE_MODULE_OPTIONS] },
      ]),
      imports: options.imports ?? [],
    };
  }

  private static withProviders(providers: DynamicModule['providers'] & unknown[]): DynamicModule {
    return {
      module: KableModule,
      global: true,
      providers: [...providers, { provide: KableNode, useExisting: KABLE_NODE }],
      exports: [KABLE_NODE, KableNode],
    };
  }

  /** Joins the cluster (unless `joinOnBootstrap: false`). */
  async onApplicationBootstrap(): Promise<void> {
    if (this.options.joinOnBootstrap !== false) await this.node.join(true);
  }

  /** Leaves the cluster, announcing DOWN. */
  async onApplicationShutdown(): Promise<void> {
    await this.node.down('application shutdown');
  }
}
