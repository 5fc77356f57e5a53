/** Identifies Kable as the transport of a handler (Nest's `@MessagePattern(pattern, KABLE_TRANSPORT)`). */
export const KABLE_TRANSPORT = Symbol.for('nestjs-kable:transport');

/** Nest's own wording, so callers switching from Nest's TCP transport match on the same text. */
export const NO_MESSAGE_HANDLER = 'There is no matching message handler defined in the remote service.';

/** Metadata key of `@KableDoing(reason)`. */
export const KABLE_DOING_REASON = 'nestjs-kable:doing';

/** Injection token of the process's shared KableNode (KableModule); the KableNode class works too. */
export const KABLE_NODE = Symbol.for('nestjs-kable:node');
