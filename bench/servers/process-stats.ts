import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { Child } from '../support.js';

/** This process's full collections, minor page faults and CPU time (µs) so far. */
export interface ProcessStats {
  fullCollections: number;
  minorFaults: number;
  userCpu: number;
  systemCpu: number;
}

// Full collections are counted because a process receiving large binaries can fall into a regime of one
// every frame or two (docs/limits.md, "Large uploads and the server process's memory settings"): the
// payload rows report them per run, for either transport, beside the rates they explain.
let fullCollections = 0;
let observing = false;

/** Starts counting full collections (once); call before the phase to be measured. */
export function countFullCollections(): void {
  if (observing) return;
  observing = true;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const { detail } = entry as unknown as { detail?: { kind?: number } };
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullCollections++;
    }
  }).observe({ entryTypes: ['gc'] });
}

export function processStats(): ProcessStats {
  const { minorPageFault, userCPUTime, systemCPUTime } = process.resourceUsage();
  return { fullCollections, minorFaults: minorPageFault, userCpu: userCPUTime, systemCpu: systemCPUTime };
}

/** A server child's counts (bench/servers/bytes-server.ts answers "stats" with processStats()). */
export async function childStats(child: Child): Promise<ProcessStats> {
  const answer = child.next('stats');
  child.send('stats');
  return ((await answer) as { stats: ProcessStats }).stats;
}
