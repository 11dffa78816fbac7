// The hybrid layout's dense path: a RingAllreduce kept in step with the scheduler's cluster view,
// and the worker step's dense hook built on it. The ring is named by the view's `workersEpoch`
// (which changes only when the worker set does), so every worker installs the same ring under the
// same name, and server churn does not disturb an allreduce in flight.
//
// A failed allreduce (a neighbour died, the ring was rebuilt) is retried on the next ring with the
// gradient as it was before the attempt: a failed op may have half-reduced the buffer in place.
// The op runs on a copy of the gradient in the adder's WASM memory (allreduceBuffer: adds in place,
// no block copied in and out), so the caller's array is the retry's original and needs no copy
// of its own, and the copy, once summed, is kept as the last result: two passes over the gradient
// per sum where the old path made 2 + 2(W-1)/W (a copy for the retry, one for the last result,
// and each reduced block into WASM memory and back).
//
// A failure can also leave workers one sum apart: a worker that received every block of sum k just
// before the neighbour died has finished k (and moved on, perhaps to wait for the others' clock at
// the parameter servers), while the others failed k. So every new ring starts with a reconcile,
// run by every member in the background: an allreduce of everyone's count of finished sums, and
// if they differ by one, a second allreduce in which one member that finished sum k contributes
// its result and the rest zeros; those that had not finished k take it as their result. Nobody
// waits for a peer that has already moved on, and every worker applies the same sum k.
//
// A worker that joins a running hybrid job (a restarted pod, say) holds the initial dense
// parameters, not the trained ones, and no sum can fix that. The reconcile spots it (it has
// started no sum while its peers have finished some) and its next sum fails with an error that
// says what to do, rather than training on with dense parameters that differ between workers.
import type { PSClient } from '../client/ps-client.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';
import { RingAllreduce, AllreduceError, allreduceBuffer, releaseAllreduceBuffer, type RingAllreduceOptions } from '../allreduce/index.ts';
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
  /** Sums this worker has finished, and the last one's result (for a reconcile). */
  private finished = 0;
  private lastResult: Float32Array | null = null;
  /** A sum taken from a peer during a reconcile: the result of the sum numbered `seq`. */
  private adopted: { seq: number; result: Float32Array } | null = null;
  /** Whether this worker has begun any sum (finished or not): false until its first step reaches the ring. */
  private startedAny = false;
  /** Set when this worker turned out to have joined a running job: every later sum throws it. */
  private refusal: Error | null = null;
  /** The sums' op buffers in WASM memory, at most three: the last result, and the next sum's (per length). */
  private work: Float32Array[] = [];
  /** Those a sum in progress holds (sums are not meant to overlap; if they do, each gets its own). */
  private readonly inUse = new Set<Float32Array>();
  private closed = false;
  /** The current ring's reconcile; sums wait for it so its operations come first on the ring. */
  private reconciling: Promise<void> = Promise.resolve();

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
    if (members.length > 1) {
      const me = members.findIndex((m) => m.nodeId === this.ring.nodeId);
      this.reconciling = this.reconcile(v.workersEpoch, members.length, me)
        .catch((e) => this.log.debug('reconcile failed (the next ring will try again)', { epoch: v.workersEpoch, error: (e as Error).message }));
    }
  }

  private async reconcile(epoch: number, w: number, me: number): Promise<void> {
    const F = 4; // per member: finished (two exact halves: f32 holds integers up to 2^24 only), result length, started any sum
    const info = new Float32Array(F * w);
    info[F * me] = this.finished % 65536;
    info[F * me + 1] = Math.floor(this.finished / 65536);
    info[F * me + 2] = this.lastResult?.length ?? 0;
    info[F * me + 3] = this.startedAny ? 1 : 0;
    if (this.ring.ringEpoch !== epoch) return; // a newer ring replaced this one: its reconcile goes first
    await this.ring.allreduce(info, 'sum');
    const counts = Array.from({ length: w }, (_, r) => info[F * r]! + info[F * r + 1]! * 65536);
    const max = Math.max(...counts);
    // Every member decides from the same numbers, so all agree on who joined late and on whether
    // the second allreduce below runs.
    const joined = counts.map((c, r) => info[F * r + 3] === 0 && c < max);
    if (joined[me]) {
      this.refusal = new Error(`${this.ring.nodeId} joined a running hybrid job: its peers have finished ${max} dense allreduce(s), so their dense parameters ` +
        'are trained and this worker\'s are not. Hybrid workers cannot join a running job; stop it and restart every worker from its last checkpoint (--resume), ' +
        'with the new worker count if you want more workers.');
      this.log.error('joined a running hybrid job', { peersFinished: max });
    } else if (joined.some(Boolean)) {
      this.log.warn('a worker joined the running job; it will stop (dense parameters cannot be handed over)', { workers: joined.map((j, r) => (j ? r : -1)).filter((r) => r >= 0).join(',') });
    }
    const settled = counts.filter((_, r) => !joined[r]);
    const min = Math.min(...settled);
    if (max === min) return;
    if (max - min > 1) {
      this.log.warn('workers are more than one sum apart; not reconciling', { counts: counts.join(',') });
      return;
    }
    const length = Math.max(...Array.from({ length: w }, (_, r) => info[F * r + 2]!));
    const buf = new Float32Array(length);
    if (counts.indexOf(max) === me) buf.set(this.lastResult!); // one contributor: the sum of it and zeros is exact
    if (this.ring.ringEpoch !== epoch) return;
    await this.ring.allreduce(buf, 'sum');
    if (this.finished === min && !joined[me]) {
      this.adopted = { seq: min, result: buf };
      this.lastResult = buf.slice();
      this.finished = max;
    }
    this.log.info('reconciled', { epoch, behind: counts.filter((c) => c === min).length, sum: min });
  }

  /** Sums `buf` over the current ring, in place; on a ring failure waits for the next ring and retries. */
  async sum(buf: Float32Array): Promise<Float32Array> {
    await this.reconciling;
    if (this.refusal) throw this.refusal;
    this.startedAny = true;
    const seq = this.finished;
    const work = this.workBuffer(buf.length); // `buf` stays the original until the sum is done
    this.inUse.add(work);
    try { return await this.sumIn(buf, work, seq); } finally {
      this.inUse.delete(work);
      if (this.closed) this.releaseWork();
    }
  }

  private async sumIn(buf: Float32Array, work: Float32Array, seq: number): Promise<Float32Array> {
    const attempts = this.opts.attempts ?? 5;
    for (let i = 0; ; i++) {
      const epoch = this.ring.ringEpoch;
      try {
        work.set(buf);
        await this.ring.allreduce(work, 'sum', { f16: this.opts.f16 });
        this.finished = seq + 1;
        this.lastResult = work;
        buf.set(work);
        return buf;
      } catch (e) {
        if (!(e instanceof AllreduceError) || i + 1 >= attempts || !this.client) throw e;
        this.log.warn('allreduce failed; waiting for a new ring', { attempt: i + 1, error: e.message });
        await this.client.waitForView((v) => v.workersEpoch > epoch, this.opts.newRingTimeoutMs ?? 15_000);
        this.follow(this.client.view);
        await this.reconciling;
        if (this.refusal) throw this.refusal;
        if (this.adopted?.seq === seq) { // a peer had finished this sum: take its result
          buf.set(this.adopted.result);
          this.adopted = null;
          return buf;
        }
      }
    }
  }

  /** An op buffer of `n` floats that is not the last result (which a reconcile may still need); frees the others. */
  private workBuffer(n: number): Float32Array {
    this.work = this.work.filter((b) => {
      const keep = b === this.lastResult || this.inUse.has(b) || b.length === n;
      if (!keep) releaseAllreduceBuffer(b);
      return keep;
    });
    let b = this.work.find((x) => x.length === n && x !== this.lastResult && !this.inUse.has(x));
    if (!b) this.work.push(b = allreduceBuffer(n));
    return b;
  }

  /** The worker step's dense hook: returns the sum over workers of the scaled gradients. */
  hook(): DenseHook { return (grads) => this.sum(grads); }

  async close(): Promise<void> {
    this.closed = true;
    await this.ring.close();
    this.releaseWork();
  }

  /** After close: gives back the op buffers no sum holds (a sum still unwinding gives back its own). */
  private releaseWork(): void {
    if (this.lastResult && this.work.includes(this.lastResult)) this.lastResult = this.lastResult.slice();
    this.work = this.work.filter((b) => {
      if (this.inUse.has(b)) return true;
      releaseAllreduceBuffer(b);
      return false;
    });
  }
}
