// Use as `node --import ./test/support/register-ts.js some-file.ts`.
import { register } from 'node:module';

register('./ts-hooks.js', import.meta.url);
