// Native ESM Jest, compiled by swc as the child processes are (scripts/swc-options.js).
import { swcOptions as swc } from './scripts/swc-options.js';

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/compat/', '<rootDir>/test/consumers/'],
  setupFilesAfterEnv: ['<rootDir>/test/setup/network-guard.ts'],
  testTimeout: 30000,
  // In CI one test file at a time: several suites start real clusters of processes and some check the
  // bounds a user would see (first reply after joining, throughput while a replica hangs); two such files
  // side by side on a 2-core runner measure each other. Locally two at a time, for speed.
  maxWorkers: process.env.CI ? 1 : 2,
};
