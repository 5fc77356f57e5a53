// The one swc setting for running the TypeScript sources: Jest's transform and the child processes'
// loader (ts-hooks.js) compile alike. Decorator metadata must be on, or Nest injects undefined silently.
export const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};
