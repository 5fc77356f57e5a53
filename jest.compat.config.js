// The transport's end-to-end tests against Nest 11 (installed under test/compat/): the same tests, with
// every @nestjs/* import resolved to the Nest 11 copy and rxjs / reflect-metadata kept single.
import base from './jest.config.js';

const compat = '<rootDir>/test/compat/node_modules';

export default {
  ...base,
  testMatch: ['<rootDir>/test/nest/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  moduleNameMapper: {
    '^@nestjs/(common|core|microservices|platform-express)$': `${compat}/@nestjs/$1`,
    '^@nestjs/(common|core|microservices|platform-express)/(.*)$': `${compat}/@nestjs/$1/$2`,
    '^rxjs$': '<rootDir>/node_modules/rxjs',
    '^rxjs/(.*)$': '<rootDir>/node_modules/rxjs/$1',
    '^reflect-metadata$': '<rootDir>/node_modules/reflect-metadata',
    // The Nest 11 install has no OpenTelemetry: Kable must run without it (test/nest/telemetry-optional).
    '^@opentelemetry/(.*)$': `${compat}/@opentelemetry/$1`,
    ...base.moduleNameMapper,
  },
};
