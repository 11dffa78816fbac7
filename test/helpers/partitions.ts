// The partition scenarios' common part (test/fault-partition-*.test.ts): a BSP DLRM run with
// R = 2 on hosts of its own (3 servers, 2 workers, podRun), once without faults and then once per
// scenario with links cut mid-run, each compared with the fault-free run's final parameters.
import * as assert from 'uvu/assert';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveCheckpoint } from '../../src/train/checkpoint.ts';
import { maxDiff, readTrainingCheckpoint, tmp } from './train.ts';
import { hybridps, podRun, slowestStep, type LiveRun, type PodRunResult } from './pod-run.ts';

const TINY = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 100 });
// Long enough that a fault declared after the heartbeat timeout (HEARTBEAT below) still falls
// mid-run when a step takes 0.07 s (an idle machine); the fault must be healed before the last step.
export const STEPS = 100;
/**
 * These tests are about heartbeats: members beat every 400 ms (the scheduler's pace), so one is
 * declared dead after 2 s of silence (5 misses) and the scheduler takes itself for cut off after
 * 0.8 s without any beat. The default (1 s, 5 s) let an idle machine's run end before the fault.
 */
const HEARTBEAT = ['--heartbeat-ms', '400'];
/** The step after which a scenario's fault starts (the run is well under way, far from its end). */
export const FAULT_AT = 8;
const RUN = ['--servers', '3', '--workers', '2', '--replicas', '2', '--model', TINY, '--batch', '32', '--steps', String(STEPS),
  '--consistency', 'bsp', '--optimizer', 'adagrad', '--eval-samples', '100', '--seed', '5'];
/** Hang guard per run (a run takes 15-60 s on a loaded 2-core machine). */
const RUN_MS = 200_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `cond` holds (polled every 100 ms); fails after `ms` saying what was awaited. */
export async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  for (const t0 = Date.now(); !cond(); await sleep(100)) if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export const logOf = (live: LiveRun, name: string) => live.pods.all.filter((p) => p.name === name).map((p) => p.log.join('')).join('');

export class PartitionRuns {
  private readonly work = tmp('hps-partition-');
  private clean?: PodRunResult;

  constructor() {
    mkdirSync(join(this.work, 'data'), { recursive: true });
    hybridps(['gen-data', '--out', join(this.work, 'data', 'train.tsv'), '--samples', '8000', '--seed', '5', '--rows-per-table', '100']);
  }

  /** The fault-free run (once). */
  async reference(): Promise<PodRunResult> {
    this.clean ??= await podRun({ work: this.work, name: 'clean', args: RUN, schedulerArgs: HEARTBEAT, deadline: Date.now() + RUN_MS });
    return this.clean;
  }

  /**
   * Runs scenario `name`: `fault` is called once, when the slowest worker has passed FAULT_AT,
   * and must heal what it cut before it returns. Asserts the final parameters equal the
   * fault-free run's, bit for bit; returns the run (its logs, its wall time).
   */
  async scenario(name: string, fault: (live: LiveRun) => Promise<void>): Promise<PodRunResult & { logsByPod: Map<string, string> }> {
    const clean = await this.reference();
    let done = false;
    const logsByPod = new Map<string, string>();
    const r = await podRun({ work: this.work, name, args: RUN, schedulerArgs: HEARTBEAT, deadline: Date.now() + RUN_MS, poll: async (live) => {
      if (!done && live.step >= FAULT_AT) {
        done = true;
        await fault(live);
        const at = slowestStep(live.workers);
        assert.ok(at < STEPS, `${name}: the fault was healed mid-run (the workers were at step ${at} of ${STEPS})`);
      }
    } });
    // Each pod's whole output, as podRun kept it when the run ended (`NN-<pod>.log`): a poll's
    // snapshot may predate the pod's last lines (seen: a take-over logged after the last poll).
    for (const f of readdirSync(r.logs)) {
      const m = /^\d+-(.+)\.log$/.exec(f);
      if (m) logsByPod.set(m[1]!, (logsByPod.get(m[1]!) ?? '') + readFileSync(join(r.logs, f), 'utf8')); // a restarted pod: one file per start
    }
    assert.ok(done, `${name}: the fault never ran (the run ended before step ${FAULT_AT})`);
    const a = await readTrainingCheckpoint(await resolveCheckpoint(clean.checkpoint), clean.config);
    const b = await readTrainingCheckpoint(await resolveCheckpoint(r.checkpoint), clean.config);
    assert.is(b.step, STEPS);
    assert.is(Math.max(maxDiff(a, b), maxDiff(b, a)), 0, `${name}: final parameters equal the fault-free run's (pod logs in ${r.logs})`);
    return { ...r, logsByPod };
  }
}
