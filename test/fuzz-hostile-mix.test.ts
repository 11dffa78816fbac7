// The "Done when": a real scheduler and a real server (each in a process of its own,
// test/helpers/hostile-target.ts) under every attack at once for several seconds, from an attacker
// in a third process (test/helpers/hostile-mix.ts): aliased frames, misaligned vectors, unread
// pull floods, malformed tiny-frame floods, oversized pre-auth frames, slow hellos, duplicate
// node-id hellos, unauthorized copyRows/clock/assignRows/copyPending, barrier-name floods. An
// honest client, pulling every 20 ms and asking the scheduler every 20 ms, keeps being answered
// quickly; neither process grows by 256 MB; no row and no clock changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { JsonProc } from './helpers/json-proc.ts';
import { SECRET } from './helpers/secret.ts';
import { table, keysOf } from './helpers/cluster.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { dial } from '../src/transport/index.ts';
import { Consistency, Role } from '../src/wire/codec.ts';

const TARGET = fileURLToPath(new URL('./helpers/hostile-target.ts', import.meta.url));
const ATTACKER = fileURLToPath(new URL('./helpers/hostile-mix.ts', import.meta.url));
const LIMITS = { maxUnauthenticated: 16, helloTimeoutMs: 1500, maxInFlightBytes: 8 << 20, sendHighWaterBytes: 4 << 20 };
const MIX_MS = 8000;
const PERIOD_MS = 20;
/**
 * The 100 ms, on the median: on this shared 2-core machine the 95th percentile was 21 to
 * 75 ms in runs of this file alone but 188 ms inside the full suite (docs/wire.md, "Bounds"), so
 * p95 has a looser bound and the maximum only has to show no hang.
 */
const P50_BOUND_MS = 100;
const P95_BOUND_MS = 500;
const HANG_GUARD_MS = 2000;
const GROWTH_BOUND_MB = 256;
/** For finding what costs most: HYBRIDPS_MIX_SKIP=tinyFrames,unreadPulls leaves those attacks out (and the test then fails on them). */
const SKIP = (process.env.HYBRIDPS_MIX_SKIP ?? '').split(',').filter(Boolean);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const env = { HYBRIDPS_LOG: 'error' };
const sched = JsonProc.start(TARGET, env, { nodeArgs: ['--expose-gc', '--max-old-space-size=256'] });
const schedUrl: string = (await sched.call({ cmd: 'scheduler', limits: LIMITS })).url;
const server = JsonProc.start(TARGET, env, { nodeArgs: ['--expose-gc', '--max-old-space-size=512'] });
const serverUrl: string = (await server.call({ cmd: 'server', scheduler: schedUrl, limits: LIMITS })).url;
const attacker = JsonProc.start(ATTACKER, env);

const good = await PSClient.connect({ secret: SECRET, schedulerUrl: schedUrl, nodeId: 'good', heartbeatIntervalMs: 200 });
await good.waitForView((v) => v.servers.length === 1 && v.workers.some((w) => w.nodeId === 'good'));
await good.declareTables([
  table({ id: 1, dim: 8, init: 'uniform', initScale: 1, optimizer: 'adagrad', hyper: { lr: 0.5 }, consistency: Consistency.ASP }),
  table({ id: 2, dim: 64, init: 'uniform', initScale: 1, optimizer: 'sgd', hyper: { lr: 0.1 }, consistency: Consistency.ASP }),
]);
const probe = await dial(schedUrl, { nodeId: 'probe', secret: SECRET, role: Role.Client });
const stats = await dial(serverUrl, { nodeId: 'stats', secret: SECRET, role: Role.Client });
const serverClocks = async () => (JSON.parse((await stats.conn.request({ type: 'statsRequest' })).body.json) as { stats: { clocks: number } }).stats.clocks;

function summary(ms: number[]): { n: number; p50: number; p90: number; p95: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p95: at(0.95), max: s.at(-1)! };
}

/** What an honest request failed with (none expected). */
const errors = new Set<string>();

/** Calls `f` every PERIOD_MS until `done`, recording how long each call took. */
async function every(f: () => Promise<unknown>, done: () => boolean): Promise<number[]> {
  const out: number[] = [];
  while (!done()) {
    const t0 = performance.now();
    const failed = await f().then(() => null, (e: Error) => e);
    const ms = failed ? Infinity : performance.now() - t0;
    if (failed) errors.add(failed.message);
    out.push(ms);
    await sleep(failed ? PERIOD_MS : Math.max(0, PERIOD_MS - ms));
  }
  return out;
}

test('every attack at once for 8 s: the honest client is answered within 100 ms (median; p95 within 500 ms), growth < 256 MB, no row or clock changes', async () => {
  const keys16 = keysOf(...Array.from({ length: 16 }, (_, i) => i));
  const keys256 = keysOf(...Array.from({ length: 256 }, (_, i) => i));
  const before = { t1: await good.pull(1, keys16), t2: await good.pull(2, keys256), clocks: await serverClocks() };
  await Promise.all([sched.call({ cmd: 'mark' }), server.call({ cmd: 'mark' })]);
  let done = false;
  const mixed = attacker.call({ cmd: 'mix', scheduler: schedUrl, server: serverUrl, epoch: good.view.epoch, victimRank: good.rank, ms: MIX_MS, skip: SKIP }, MIX_MS + 60_000)
    .finally(() => { done = true; });
  await sleep(300); // the attacks under way
  const [pulls, schedAsks, { count }] = await Promise.all([
    every(() => good.pull(1, keys16), () => done),
    every(() => probe.conn.request({ type: 'statsRequest' }), () => done),
    mixed,
  ]);
  const [sg, vg] = await Promise.all([sched.call({ cmd: 'peak' }), server.call({ cmd: 'peak' })]);
  const p = summary(pulls), q = summary(schedAsks);
  process.stderr.write(`[mix] attacks: ${JSON.stringify(count)}\n[mix] honest failures: ${[...errors].join('; ') || 'none'}\n`);
  process.stderr.write(`[mix] server pulls: n ${p.n}, p50 ${p.p50.toFixed(1)} ms, p90 ${p.p90.toFixed(1)} ms, p95 ${p.p95.toFixed(1)} ms, max ${p.max.toFixed(1)} ms; growth ${vg.growthMb.toFixed(1)} MB\n`);
  process.stderr.write(`[mix] scheduler requests: n ${q.n}, p50 ${q.p50.toFixed(1)} ms, p90 ${q.p90.toFixed(1)} ms, p95 ${q.p95.toFixed(1)} ms, max ${q.max.toFixed(1)} ms; growth ${sg.growthMb.toFixed(1)} MB\n`);
  assert.equal([...errors], [], 'no honest request failed');
  // Each attack ran, and what must be refused was.
  for (const what of ['aliased DeclareTables', 'misaligned pull + NaN push', 'unread 1 MiB pulls', '7-byte malformed frames', 'silent TCP connections',
    'duplicate node-id hello: refused', 'copyRows with non-finite slots: refused', 'clock for the victim rank: refused', 'assignRows: refused',
    'copyPending: refused', 'barrier with a fresh name: refused']) assert.ok((count[what] ?? 0) > 0, `attack '${what}' ran: ${JSON.stringify(count)}`);
  assert.ok(Object.keys(count).some((k) => k.startsWith('8 MiB pre-auth frame')), 'oversized pre-auth frames sent');
  for (const k of Object.keys(count)) assert.not.match(k, /ACCEPTED|answered ok|answered clockAck|stopped/, `${k}: ${count[k]}`);
  assert.ok(p.n > MIX_MS / PERIOD_MS / 4, `only ${p.n} honest pulls in ${MIX_MS} ms`);
  assert.ok(p.p50 <= P50_BOUND_MS && q.p50 <= P50_BOUND_MS, `median: pulls ${p.p50.toFixed(0)} ms, scheduler ${q.p50.toFixed(0)} ms`);
  assert.ok(p.p95 <= P95_BOUND_MS, `honest pulls: p95 ${p.p95.toFixed(0)} ms (p50 ${p.p50.toFixed(0)}, max ${p.max.toFixed(0)})`);
  assert.ok(q.p95 <= P95_BOUND_MS, `scheduler requests: p95 ${q.p95.toFixed(0)} ms (p50 ${q.p50.toFixed(0)}, max ${q.max.toFixed(0)})`);
  assert.ok(p.max < HANG_GUARD_MS && q.max < HANG_GUARD_MS, `a request took ${Math.max(p.max, q.max).toFixed(0)} ms`);
  assert.ok(vg.growthMb < GROWTH_BOUND_MB, `the server grew by ${vg.growthMb.toFixed(0)} MB`);
  assert.ok(sg.growthMb < GROWTH_BOUND_MB, `the scheduler grew by ${sg.growthMb.toFixed(0)} MB`);
  assert.equal(Array.from(await good.pull(1, keys16)), Array.from(before.t1), 'table 1 unchanged (exact)');
  assert.equal(Array.from(await good.pull(2, keys256)), Array.from(before.t2), 'table 2 unchanged (exact)');
  assert.is(await serverClocks(), before.clocks, 'no clock accepted');
  assert.is(good.view.servers.length, 1, 'the server kept its place in the view');
});

test.after(async () => {
  await good.close().catch(() => {});
  await probe.conn.close().catch(() => {});
  await stats.conn.close().catch(() => {});
  await attacker.stop();
  await server.stop();
  await sched.stop();
});
test.run();
