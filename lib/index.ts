// Public API: filled in as the pieces land.
export * from './node/states.js';
export * from './node/errors.js';
export type * from './node/advert.js';
export type * from './node/options.js';
export type * from './node/discovery-transport.js';
