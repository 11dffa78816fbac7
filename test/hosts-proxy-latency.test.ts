// Added latency between separate hosts: this kernel has no `netem`, so a user-space TCP proxy
// (test/helpers/tcp-proxy.ts) on a host of its own sits between every two pods, each pod listening
// on its own address and announcing the proxy's (HYBRIDPS_ADVERTISE, from `hybridps run
// --advertise`). A BSP run (R = 2) with 2 ms added each way on every link completes with the
// same final parameters as the run without the proxy; so does one with 1% of chunks "lost" (each
// held a 200 ms retransmission timeout more, with everything behind it: what TCP shows an
// application of packet loss). The time each cost is printed (no timing assertion: the machine
// is shared).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveCheckpoint } from '../src/train/checkpoint.ts';
import { maxDiff, readTrainingCheckpoint, tmp } from './helpers/train.ts';
import { hybridps, podRun } from './helpers/pod-run.ts';

const TINY = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 100 });
const RUN = ['--servers', '2', '--workers', '2', '--replicas', '2', '--model', TINY, '--batch', '32', '--steps', '16',
  '--consistency', 'bsp', '--eval-samples', '100', '--seed', '9'];
const DELAY_MS = 2;
const LOSS = 0.01, RTO_MS = 200;

test(`a BSP run with ${DELAY_MS} ms added each way on every link (a TCP proxy between the hosts), and one with ${LOSS * 100}% loss on top, complete, equal to the run without`, async () => {
  const work = tmp('hps-latency-');
  mkdirSync(join(work, 'data'), { recursive: true });
  hybridps(['gen-data', '--out', join(work, 'data', 'train.tsv'), '--samples', '4000', '--seed', '9', '--rows-per-table', '100']);
  const direct = await podRun({ work, name: 'direct', args: RUN, deadline: Date.now() + 200_000 });
  const slow = await podRun({ work, name: 'proxied', args: RUN, deadline: Date.now() + 200_000, proxyDelayMs: DELAY_MS });
  assert.ok(slow.proxy && slow.proxy.connections >= 5 && slow.proxy.bytes > 0, `the links ran through the proxy: ${JSON.stringify(slow.proxy)}`);
  const lossy = await podRun({ work, name: 'lossy', args: RUN, deadline: Date.now() + 300_000, proxyDelayMs: DELAY_MS, proxyLoss: LOSS, proxyRtoMs: RTO_MS });
  assert.ok(lossy.proxy && lossy.proxy.lostChunks > 0, `the proxy stalled some chunks as lost: ${JSON.stringify(lossy.proxy)}`);
  const a = await readTrainingCheckpoint(await resolveCheckpoint(direct.checkpoint), direct.config);
  const b = await readTrainingCheckpoint(await resolveCheckpoint(slow.checkpoint), direct.config);
  const c = await readTrainingCheckpoint(await resolveCheckpoint(lossy.checkpoint), direct.config);
  assert.is(b.step, 16);
  assert.is(c.step, 16);
  assert.is(Math.max(maxDiff(a, b), maxDiff(b, a)), 0, 'latency changes no result under BSP');
  assert.is(Math.max(maxDiff(a, c), maxDiff(c, a)), 0, 'loss (retransmission stalls) changes no result under BSP');
  const load = execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/.*load average: /, '');
  // Per step, from the workers' own clocks (first step to last): start-up left out.
  const [ds, ps, ls] = [direct.trainS / 15, slow.trainS / 15, lossy.trainS / 15];
  console.log(`latency proxy (${DELAY_MS} ms each way per link): ${(ds * 1000).toFixed(0)} ms per step direct, ${(ps * 1000).toFixed(0)} ms proxied ` +
    `(${(ps / Math.max(ds, 1e-9)).toFixed(2)}x, +${((ps - ds) * 1000).toFixed(0)} ms); wall ${direct.wallS.toFixed(1)} s vs ${slow.wallS.toFixed(1)} s; ` +
    `proxy carried ${slow.proxy!.connections} connections, ${(slow.proxy!.bytes / 1e6).toFixed(1)} MB; load ${load}`);
  console.log(`with ${LOSS * 100}% of chunks lost (${lossy.proxy!.lostChunks} of ${lossy.proxy!.chunks}, ${RTO_MS} ms each): ${(ls * 1000).toFixed(0)} ms per step ` +
    `(${(ls / Math.max(ds, 1e-9)).toFixed(2)}x direct); wall ${lossy.wallS.toFixed(1)} s`);
});

test.run();
