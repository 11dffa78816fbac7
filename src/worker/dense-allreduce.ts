// The hybrid layout's dense path: a RingAllreduce kept in step with the scheduler's cluster view,
// and the worker step's dense hook built on it. The ring is named by the view's `workersEpoch`
// (which changes only when the worker set does), so every worker installs the same ring under the
// same name, and server churn does not disturb an allreduce in flight.
//
// A failed allreduce (a neighbour died, the ring was rebuilt) is retried on the next ring with the
// gradient as it was before the attempt: a failed op may have half-reduced the buffer in place.
import type { PSClient } from '../client/ps-client.ts';
import type { ClusterView } from '../scheduler/cluster-view.ts';
import { RingAllreduce, AllreduceError, type RingAllreduceOptions } from '../allreduce/index.ts';
import { createLogger } from '../util/log.ts';
import type { DenseHook } from './worker-step.ts';

export interface DenseAllreduceOptions {
  /** Attempts per step across ring rebuilds (default 5). */
  attempts?: number;
  /** How long to wait for the scheduler to publish a new ring after a failure (default 15 s). */
  newRingTimeoutMs?: number;
  /** Values travel as fp16 (see docs/allreduce.md for the error bound). */
  f16?: boolean;
}

export class DenseAllreduce {
  private readonly log;
  private client: PSClient | null = null;

  private constructor(readonly ring: RingAllreduce, private readonly opts: DenseAllreduceOptions) {
    this.log = createLogger(`${ring.nodeId}/allreduce`);
  }

  /** Starts the ring listener; announce `url` as the worker's address when joining the scheduler. */
  static async create(ringOpts: RingAllreduceOptions, opts: DenseAllreduceOptions = {}): Promise<DenseAllreduce> {
    return new DenseAllreduce(await RingAllreduce.create(ringOpts), opts);
  }

  get url(): string { return this.ring.url; }

  /** Follows the client's cluster view from now on (the client must have joined with `address: url`). */
  attach(client: PSClient): void {
    this.client = client;
    client.onViewChange((v) => this.follow(v));
    this.follow(client.view);
  }

  private follow(v: ClusterView): void {
    if (!v.workers.some((w) => w.nodeId === this.ring.nodeId)) return; // our own registration is not in this view yet
    if (v.workersEpoch <= this.ring.ringEpoch) return;
    const members = v.workers.map((w) => ({ nodeId: w.nodeId, address: w.address }));
    const missing = members.find((m) => !m.address);
    if (missing) { this.log.warn('worker without a ring address', { worker: missing.nodeId }); return; }
    this.ring.setRing(members, v.workersEpoch);
    this.log.info('ring', { epoch: v.workersEpoch, workers: members.length });
  }

  /** Sums `buf` over the current ring, in place; on a ring failure waits for the next ring and retries. */
  async sum(buf: Float32Array): Promise<Float32Array> {
    const attempts = this.opts.attempts ?? 5;
    const original = buf.slice();
    for (let i = 0; ; i++) {
      const epoch = this.ring.ringEpoch;
      try {
        return await this.ring.allreduce(buf, 'sum', { f16: this.opts.f16 });
      } catch (e) {
        if (!(e instanceof AllreduceError) || i + 1 >= attempts || !this.client) throw e;
        this.log.warn('allreduce failed; waiting for a new ring', { attempt: i + 1, error: e.message });
        buf.set(original);
        await this.client.waitForView((v) => v.workersEpoch > epoch, this.opts.newRingTimeoutMs ?? 15_000);
        this.follow(this.client.view);
      }
    }
  }

  /** The worker step's dense hook: returns the sum over workers of the scaled gradients. */
  hook(): DenseHook { return (grads) => this.sum(grads); }

  close(): Promise<void> { return this.ring.close(); }
}
