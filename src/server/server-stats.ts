// A server's counters (status, /metrics), one object shared by the units that count.
export function newServerStats() {
  return {
    pulls: 0, pushes: 0, rowsPulled: 0, rowsPushed: 0, bytesIn: 0, bytesOut: 0,
    applyMs: 0,
    // Request frames: a PullBatch / PushBatch counts once here, and once per part in pulls / pushes.
    pullFrames: 0, pushFrames: 0, rejected: 0, duplicatePushes: 0, clocks: 0,
  };
}

export type ServerStats = ReturnType<typeof newServerStats>;
