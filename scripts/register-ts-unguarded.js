// register-ts.js without the network guard, for the sample's container image only (examples/): there
// each service is a container whose nodes must reach the other containers, which the guard (made for
// tests, the sample on one machine and the bench) forbids. Use as `node --import ./scripts/register-ts-unguarded.js file.ts`.
import { register } from 'node:module';

register('./ts-hooks.js', import.meta.url);
