// Pulls and pushes (ps-lite's KVServer request handle). A pull is answered by the head of each
// key's chain once the table's consistency model lets it read. A push is checked, cut down to the
// rows this server has not applied under its (sender, seq) yet, handed to the consistency gate
// (applied now, or summed for its BSP clock), and forwarded down each key's replication chain.
// A PullBatch / PushBatch carries one part per table and is handled part by part exactly so,
// with every part checked before any is applied: a bad part refuses the whole message.
import { RpcError } from '../transport/index.ts';
import { ErrorCode, type Body, type BodyOf, type PullBody, type PushBody } from '../wire/codec.ts';
import type { ServerContext } from './server-context.ts';
import type { TableState } from './tables.ts';
import { subsetPush, type Replication } from './replication.ts';
import { checkKeys, pushProblem, refuse } from './request-checks.ts';

const EMPTY = new Float32Array(0);

/** A push part that passed every check, with what applying and forwarding it needs. */
interface CheckedPush { t: TableState; p: PushBody; fresh: Int32Array | null; freshRows: number; next: Map<string, number[]> }

export class KvHandler {
  constructor(private readonly ctx: ServerContext, private readonly replication: Replication) {}

  async pull(p: PullBody): Promise<Body> {
    const t = this.checkPull(p.table, p.keys);
    await this.ctx.gate.beforePull(t, p.clock);
    this.countPull(t, p.keys.length);
    this.ctx.stats.pullFrames++;
    // The rows are copied straight into the reply frame when it is encoded (keys view the request
    // frame, which ws does not reuse).
    const keys = p.keys;
    return {
      type: 'pullReply', table: p.table, dim: t.spec.dim, values: EMPTY, format: p.format ?? 'f32', fresh: this.fresh(),
      writer: { length: keys.length * t.spec.dim, write: (dst) => { t.store.pull(keys, dst); } },
    };
  }

  /**
   * How fresh rows read from now on are: every live worker finished the clocks < this one (their
   * pushes were applied, or for BSP summed and applied, before they sent that clock); -1 with no
   * live workers. Read before the rows are copied, so it only ever understates (worker/row-cache.ts).
   */
  private fresh(): number {
    const m = this.ctx.gate.clocks.minClock();
    return Number.isFinite(m) ? m : -1;
  }

  /** Every part checked first; then each waits for its table's consistency; the rows of all go straight into one reply section. */
  async pullBatch(b: BodyOf<'pullBatch'>): Promise<Body> {
    // Optimizer state travels exactly or not at all: an fp16 or bf16 reply would round the update counts.
    const format = b.format ?? 'f32';
    if (format !== 'f32' && b.parts.some((x) => x.state)) {
      throw new RpcError(ErrorCode.Malformed, `a pull batch asked for optimizer state with ${format} rows; state travels only as f32 (pull it with format f32)`);
    }
    const ts = b.parts.map((x) => this.checkPull(x.table, x.keys));
    await Promise.all([...new Set(ts)].map((t) => this.ctx.gate.beforePull(t, b.clock)));
    const offsets = new Uint32Array(ts.length), dims = new Uint32Array(ts.length), widths = new Uint32Array(ts.length);
    let length = 0;
    ts.forEach((t, i) => {
      const n = b.parts[i]!.keys.length;
      offsets[i] = length;
      dims[i] = t.spec.dim;
      widths[i] = b.parts[i]!.state ? t.store.stateWidth : 0;
      length += n * (t.spec.dim + widths[i]!);
      this.countPull(t, n);
    });
    this.ctx.stats.pullFrames++;
    return {
      type: 'pullBatchReply', offsets, dims, values: EMPTY, format, fresh: this.fresh(), stateWidths: widths,
      writer: {
        length, write: (dst) => {
          ts.forEach((t, i) => {
            const keys = b.parts[i]!.keys, rows = offsets[i]! + keys.length * dims[i]!;
            t.store.pull(keys, dst.subarray(offsets[i], rows), widths[i] ? dst.subarray(rows, rows + keys.length * widths[i]!) : undefined);
          });
        },
      },
    };
  }

  /**
   * A push, from a worker (`hop` 0: this server must head every key's chain) or forwarded down
   * a replication chain (`hop` 1). Applied locally once per (sender, seq), then forwarded to the
   * next server of each key's chain; acknowledged only when the chain's tail has it.
   */
  async push(p: PushBody, sender: string, hop: 0 | 1): Promise<Body> {
    const c = this.checkPush(p, sender, hop);
    if (hop === 0) this.ctx.stats.pushFrames++;
    return { type: 'pushAck', ...(await this.applyPush(c, sender)) };
  }

  /** Every part checked (and its value range, and seqs distinct) before any is applied. */
  async pushBatch(b: BodyOf<'pushBatch'>, sender: string): Promise<Body> {
    const seqs = new Set<number>();
    const parts = b.parts.map((x): PushBody => {
      if (seqs.has(x.seq)) throw new RpcError(ErrorCode.Malformed, `push batch carries seq ${x.seq} twice`);
      seqs.add(x.seq);
      const n = x.keys.length * this.ctx.tables.get(x.table).spec.dim;
      if (x.offset + n > b.values.length) {
        throw new RpcError(ErrorCode.BadDimension, `push batch part of table ${x.table} needs values [${x.offset}, ${x.offset + n}), the batch has ${b.values.length}`);
      }
      return { type: 'push', table: x.table, keys: x.keys, values: b.values.subarray(x.offset, x.offset + n), worker: b.worker, clock: b.clock, seq: x.seq, format: 'f32' };
    });
    const checked = parts.map((p) => this.checkPush(p, sender, 0));
    this.ctx.stats.pushFrames++;
    return { type: 'pushBatchAck', acks: await Promise.all(checked.map((c) => this.applyPush(c, sender))) };
  }

  /** A pull part's checks: known table, keys below 2^48, this server heads every key's chain. */
  private checkPull(table: number, keys: BigUint64Array): TableState {
    const t = this.ctx.tables.get(table);
    refuse(checkKeys(keys));
    this.replication.nextHops(table, keys, true); // only the head answers, so every reader sees one copy
    return t;
  }

  private countPull(t: TableState, rows: number): void {
    this.ctx.stats.pulls++;
    this.ctx.stats.rowsPulled += rows;
    this.ctx.stats.bytesOut += rows * t.spec.dim * 4;
  }

  /** Everything that may refuse a push, changing nothing. */
  private checkPush(p: PushBody, sender: string, hop: 0 | 1): CheckedPush {
    const t = this.ctx.tables.get(p.table);
    refuse(pushProblem(t.spec.dim, p.keys, p.values));
    // Only the rows this server has not applied under (sender, seq) yet: a retry of a push may
    // arrive here whole, in part, or as a part that another head already forwarded (see PushDeduper).
    const fresh = this.ctx.dedup.unapplied(sender, p.seq, p.keys);
    const freshRows = fresh ? fresh.length : p.keys.length;
    this.ctx.gate.admitPush(t, p.clock, freshRows);
    const next = this.replication.nextHops(p.table, p.keys, hop === 0);
    return { t, p, fresh, freshRows, next };
  }

  /** Applies a checked push's fresh rows once, forwards it down its chains, and says whether it was applied. */
  private async applyPush({ t, p, fresh, freshRows, next }: CheckedPush, sender: string): Promise<{ seq: number; applied: boolean }> {
    const duplicate = freshRows === 0;
    if (duplicate) {
      this.ctx.stats.duplicatePushes++;
    } else {
      const part = fresh ? subsetPush(p, fresh, t.spec.dim) : p;
      this.ctx.gate.take(t, p.clock, part.keys, part.values);
      this.ctx.dedup.record(sender, p.seq, part.keys, p.table);
      this.ctx.stats.pushes++;
      this.ctx.stats.rowsPushed += part.keys.length;
      this.ctx.stats.bytesIn += part.values.byteLength;
    }
    // Forward even a duplicate: the first attempt may have died before reaching the tail.
    await this.replication.forward(next, p, sender, t.spec.dim);
    return { seq: p.seq, applied: !duplicate && this.ctx.gate.appliesOnArrival(t) };
  }
}
