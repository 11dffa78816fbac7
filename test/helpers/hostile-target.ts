// A scheduler or a server in a process of its own, for attacks whose cost must be measured in
// that process: it samples its resident memory every few milliseconds and reports the peak since
// the last mark. Commands (JSON lines): scheduler | server | mark | peak | ping.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveCommands } from './json-proc.ts';
import { SECRET } from './secret.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { PsServer } from '../../src/server/ps-server.ts';

// Heartbeats every 600 ms, 5 missed is death: a process blocked for 3 s (fuzz-hostile's bound on
// an honest answer, ANSWER_BOUND_MS) loses its membership. At 200 ms a server that a busy machine
// left without CPU for a second was declared dead with no attack running.
const HEARTBEAT_MS = 600;

let base = 0;
let peak = 0;
const sample = () => { peak = Math.max(peak, process.memoryUsage.rss()); };
setInterval(sample, 5).unref();
const gc = (globalThis as { gc?: () => void }).gc;

serveCommands(async (m) => {
  switch (m.cmd) {
    case 'scheduler': {
      const s = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: HEARTBEAT_MS, limits: m.limits });
      return { url: s.url };
    }
    case 'server': {
      const s = await PsServer.start({
        secret: SECRET, schedulerUrl: m.scheduler, nodeId: 'server-0', heartbeatIntervalMs: HEARTBEAT_MS,
        checkpointRoot: mkdtempSync(join(tmpdir(), 'hps-hostile-')), limits: m.limits,
      });
      return { url: s.url };
    }
    case 'mark':
      gc?.();
      base = peak = process.memoryUsage.rss();
      return { baseMb: base / 2 ** 20 };
    case 'peak':
      sample();
      return { growthMb: (peak - base) / 2 ** 20, peakMb: peak / 2 ** 20 };
    case 'ping':
      return { ok: true };
    default:
      throw new Error(`unknown command ${m.cmd}`);
  }
});
