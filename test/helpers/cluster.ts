// A real scheduler and real servers on loopback, in this process (fast to start); tests that
// need separate processes use LocalCluster or spawn helpers of their own.
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { PsServer } from '../../src/server/ps-server.ts';
import { PSClient } from '../../src/client/ps-client.ts';
import { Consistency, type TableSpecMsg } from '../../src/wire/codec.ts';
export { randomFloats } from './random.ts';

export { SECRET } from './secret.ts';
import { SECRET } from './secret.ts';

export interface TestCluster {
  scheduler: Scheduler;
  checkpointRoot: string;
  servers: PsServer[];
  clients: PSClient[];
  client(nodeId?: string): Promise<PSClient>;
  close(): Promise<void>;
}

/**
 * Heartbeats default to 1 s (5 missed: dead): members in these tests die by closing their links,
 * and a process (an ASP pusher, say) that a busy machine leaves without CPU for a second is alive.
 */
export async function startCluster(opts: { servers: number; replicas?: number; heartbeatMs?: number; maxFrameBytes?: number; viewWaitMs?: number }): Promise<TestCluster> {
  // Servers may write checkpoints only here; removed on close.
  const checkpointRoot = mkdtempSync(join(tmpdir(), 'hps-test-'));
  const scheduler = await Scheduler.start({ secret: SECRET, replicas: opts.replicas, heartbeatIntervalMs: opts.heartbeatMs ?? 1000 });
  const servers: PsServer[] = [];
  for (let i = 0; i < opts.servers; i++) {
    servers.push(await PsServer.start({ secret: SECRET, checkpointRoot, schedulerUrl: scheduler.url, nodeId: `server-${i}`, heartbeatIntervalMs: opts.heartbeatMs ?? 1000, maxFrameBytes: opts.maxFrameBytes, viewWaitMs: opts.viewWaitMs }));
  }
  const clients: PSClient[] = [];
  return {
    scheduler, servers, clients, checkpointRoot,
    async client(nodeId?: string) {
      const c = await PSClient.connect({ secret: SECRET, schedulerUrl: scheduler.url, nodeId, heartbeatIntervalMs: opts.heartbeatMs ?? 1000 });
      clients.push(c);
      await c.waitForView((v) => v.servers.length === opts.servers && v.workers.some((w) => w.nodeId === c.nodeId));
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await Promise.all(servers.map((s) => s.stop().catch(() => {})));
      await scheduler.stop();
      rmSync(checkpointRoot, { recursive: true, force: true });
    },
  };
}

/** Waits until every client sees `workers` workers, so BSP/SSP count all of them. */
export async function allJoined(clients: PSClient[], workers: number): Promise<void> {
  await Promise.all(clients.map((c) => c.waitForView((v) => v.workers.length === workers && c.rank >= 0)));
}

export function table(partial: Partial<TableSpecMsg> & { id: number; dim: number }): TableSpecMsg {
  return {
    name: `t${partial.id}`, init: 'zeros', initScale: 0, seed: 7n, optimizer: 'sgd', hyper: { lr: 0.1 },
    consistency: Consistency.BSP, staleness: 0, ...partial,
  };
}

export function keysOf(...ks: number[]): BigUint64Array {
  return BigUint64Array.from(ks, (k) => BigInt(k));
}

/**
 * 'settled' as soon as `p` settles, 'pending' if it has not within `ms`. To show that something
 * waits, use a short `ms` (a busy machine only makes 'pending' likelier); to show that it does
 * not, a long one (HANG_GUARD_MS): the answer comes as soon as it settles either way.
 */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<'settled' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(() => 'settled' as const, () => 'settled' as const);
  const pending = new Promise<'pending'>((r) => { timer = setTimeout(() => r('pending'), ms); });
  try { return await Promise.race([settled, pending]); } finally { clearTimeout(timer); }
}

/** A bound that only guards against a hang: generous, since a busy machine can be very slow. */
export const HANG_GUARD_MS = 30_000;
