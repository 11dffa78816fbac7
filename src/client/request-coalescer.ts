// Coalesces the pulls (and the pushes) a worker issues in the same event-loop turn into one
// PullBatch (PushBatch) per server and clock, and splits each reply back to its callers: a step
// over 26 tables sends one pull and one push frame per server instead of 26 each. A turn with one
// part for a server sends the plain Pull / Push. A batch that fails fails each of its parts with
// the same error, so the client's per-part retry (re-route under the next view, same seq) holds.
import type { Envelope, RowFormat } from '../wire/codec.ts';
import type { Reply, RequestBody } from '../wire/replies.ts';

type Send = <B extends RequestBody>(serverId: string, body: B) => Promise<Envelope<Reply<B['type']>>>;

interface Waiter<T> { resolve: (v: T) => void; reject: (e: unknown) => void }
/** A part's rows (a view of the reply frame, or widened from it), how fresh the server said they are (PullReply.fresh), and the format they travelled in. */
export interface PulledPart { values: Float32Array; fresh: number; format: RowFormat; state?: Float32Array }
interface PullPart extends Waiter<PulledPart> { table: number; keys: BigUint64Array; state: boolean }
/**
 * A push part's gradient rows: rows `idx` of `src` (row width `dim`), or all of `src` in order
 * (idx null). Gathered straight into the frame: no per-part copy (the push of a 26-table step
 * over 2 servers copied its 5.9 MB of gradients once more, and left them to the GC).
 */
export interface PushRows { src: Float32Array; idx: Int32Array | null; dim: number }
interface PushPart extends Waiter<void> { table: number; keys: BigUint64Array; rows: PushRows; seq: number }

/** Floats a PushRows carries. */
const rowsLength = (r: PushRows) => (r.idx ? r.idx.length * r.dim : r.src.length);

/** Writes a PushRows' rows into `dst` from `offset`. */
export function writeRows(r: PushRows, dst: Float32Array, offset: number): void {
  if (!r.idx) { dst.set(r.src, offset); return; }
  const { src, idx, dim } = r;
  for (let i = 0; i < idx.length; i++) dst.set(src.subarray(idx[i]! * dim, (idx[i]! + 1) * dim), offset + i * dim);
}
interface Queue<P> { serverId: string; clock: number; parts: P[]; bytes: number }

/** Values per message at most (a batch over it is cut in two), well under the servers' 64 MiB frame limit. */
export const MAX_BATCH_VALUE_BYTES = 16 << 20;

export class RequestCoalescer {
  private pulls = new Map<string, Queue<PullPart>>();
  private pushes = new Map<string, Queue<PushPart>>();
  /** Queues cut off at MAX_BATCH_VALUE_BYTES, sent with the next flush. */
  private fullPulls: Queue<PullPart>[] = [];
  private fullPushes: Queue<PushPart>[] = [];
  private scheduled = false;

  constructor(private readonly send: Send, private readonly worker: () => number, private readonly format: RowFormat) {}

  /**
   * The rows of `keys` (keys.length x the table's dim), asked for together with this turn's other
   * pulls to `serverId`; with `state`, also their optimizer state (PullBatchReply.stateWidths).
   */
  pull(serverId: string, table: number, keys: BigUint64Array, dim: number, clock: number, state = false): Promise<PulledPart> {
    const bytes = keys.length * dim * 4 * (state ? 2 : 1); // the state of one slot, about; a batch is cut well below the frame limit
    return new Promise((resolve, reject) => this.queue(this.pulls, this.fullPulls, serverId, clock, bytes).parts.push({ table, keys, state, resolve, reject }));
  }

  /** Pushes gradient rows, sent together with this turn's other pushes to `serverId`. */
  push(serverId: string, table: number, keys: BigUint64Array, rows: PushRows, seq: number, clock: number): Promise<void> {
    return new Promise((resolve, reject) => this.queue(this.pushes, this.fullPushes, serverId, clock, rowsLength(rows) * 4).parts.push({ table, keys, rows, seq, resolve, reject }));
  }

  private queue<P>(queues: Map<string, Queue<P>>, full: Queue<P>[], serverId: string, clock: number, bytes: number): Queue<P> {
    const id = `${serverId}\0${clock}`;
    let q = queues.get(id);
    if (q && q.bytes + bytes > MAX_BATCH_VALUE_BYTES) { full.push(q); q = undefined; }
    if (!q) queues.set(id, (q = { serverId, clock, parts: [], bytes: 0 }));
    q.bytes += bytes;
    if (!this.scheduled) { this.scheduled = true; setImmediate(() => this.flush()); }
    return q;
  }

  private flush(): void {
    this.scheduled = false;
    const pulls = [...this.fullPulls, ...this.pulls.values()], pushes = [...this.fullPushes, ...this.pushes.values()];
    this.pulls.clear();
    this.pushes.clear();
    this.fullPulls = [];
    this.fullPushes = [];
    for (const q of pulls) settle(q.parts, this.sendPulls(q));
    for (const q of pushes) settle(q.parts, this.sendPushes(q));
  }

  private async sendPulls({ serverId, clock, parts }: Queue<PullPart>): Promise<PulledPart[]> {
    const base = { clock, worker: this.worker(), format: this.format };
    if (parts.length === 1 && !parts[0]!.state) {
      const p = parts[0]!;
      const r = (await this.send(serverId, { type: 'pull', table: p.table, keys: p.keys, ...base })).body;
      return [{ values: r.values, fresh: r.fresh ?? -1, format: r.format ?? 'f32' }];
    }
    const r = (await this.send(serverId, { type: 'pullBatch', parts: parts.map((p) => ({ table: p.table, keys: p.keys, ...(p.state ? { state: true } : {}) })), ...base })).body;
    if (r.offsets.length !== parts.length || r.dims.length !== parts.length) {
      throw new Error(`server ${serverId} answered a pull of ${parts.length} parts with ${r.offsets.length} offsets and ${r.dims.length} dims`);
    }
    return parts.map((p, i) => {
      const width = r.stateWidths?.[i] ?? 0;
      if (p.state && width === 0) throw new Error(`server ${serverId} sent no optimizer state for a part that asked for it (a server from before state pulls? upgrade it, or run without the row cache)`);
      const start = r.offsets[i]!, rows = start + p.keys.length * r.dims[i]!, end = rows + p.keys.length * width;
      if (end > r.values.length) throw new Error(`server ${serverId} answered part ${i} with values [${start}, ${end}) of ${r.values.length}`);
      // Views of the reply's values: of the frame itself under f32, of the one widened copy under f16 / bf16.
      return { values: r.values.subarray(start, rows), fresh: r.fresh ?? -1, format: r.format ?? 'f32', ...(width ? { state: r.values.subarray(rows, end) } : {}) };
    });
  }

  private async sendPushes({ serverId, clock, parts }: Queue<PushPart>): Promise<void[]> {
    const worker = this.worker(), format = this.format;
    if (parts.length === 1) {
      const p = parts[0]!;
      let values = p.rows.src;
      if (p.rows.idx) writeRows(p.rows, (values = new Float32Array(rowsLength(p.rows))), 0);
      await this.send(serverId, { type: 'push', table: p.table, keys: p.keys, values, worker, clock, seq: p.seq, format });
      return [undefined];
    }
    let length = 0;
    const wire = parts.map((p) => { const offset = length; length += rowsLength(p.rows); return { table: p.table, keys: p.keys, seq: p.seq, offset }; });
    // The gradients go straight into the frame, part after part (no concatenated copy, no per-part gather).
    // Where every part's rows are contiguous (grouped keys), a framed link sends them from where they are (chunks).
    const chunks = parts.every((p) => !p.rows.idx) ? parts.map((p) => p.rows.src) : undefined;
    const writer = { length, chunks, write: (dst: Float32Array) => { for (let i = 0; i < parts.length; i++) writeRows(parts[i]!.rows, dst, wire[i]!.offset); } };
    const ack = (await this.send(serverId, { type: 'pushBatch', parts: wire, values: new Float32Array(0), writer, worker, clock, format })).body;
    if (ack.acks.length !== parts.length) throw new Error(`server ${serverId} acknowledged ${ack.acks.length} of ${parts.length} push parts`);
    return parts.map(() => undefined);
  }
}

/** Resolves each part with its share of the batch's result, or rejects every part with its error. */
function settle<T>(parts: Waiter<T>[], result: Promise<T[]>): void {
  result.then((vs) => parts.forEach((p, i) => p.resolve(vs[i]!)), (e) => parts.forEach((p) => p.reject(e)));
}
