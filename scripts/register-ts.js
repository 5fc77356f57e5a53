// Use as `node --import ./scripts/register-ts.js some-file.ts`: runs TypeScript directly and
// enforces the network rule in the child process, as in the Jest workers.
import { register } from 'node:module';
import { installNetworkGuard } from './network-guard.js';

installNetworkGuard();
register('./ts-hooks.js', import.meta.url);
