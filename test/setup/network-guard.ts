// Fails any test that sends, or whose child processes send, a packet outside loopback: see
// scripts/network-guard.js for the rule. Runs in every Jest worker before the tests.
import { afterEach, expect } from '@jest/globals';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  installNetworkGuard,
  reportFileOf,
  takeViolations,
  watchMarkerOf,
} from '../../scripts/network-guard.js';

installNetworkGuard();

const report = reportFileOf(process.pid);
const marker = watchMarkerOf(process.pid);
// Left behind on purpose: workers are reused across files, and a stale marker only names a dead pid.
writeFileSync(marker, '');

function childViolations(): unknown[] {
  if (!existsSync(report)) return [];
  const lines = readFileSync(report, 'utf8').split('\n').filter(Boolean);
  rmSync(report, { force: true });
  return lines.map((line) => JSON.parse(line) as unknown);
}

afterEach(() => {
  const seen = [...takeViolations(), ...childViolations()];
  expect({ networkRuleViolations: seen }).toEqual({ networkRuleViolations: [] });
});
