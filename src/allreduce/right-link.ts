// The link to the right neighbour for one ring epoch: dialled once (with retries while the
// neighbour's listener is still coming up), then one ordered send queue shared by every op.
// Order matters: a rank checks that each step's chunks arrive in order, and Connection.send on
// its own does not promise FIFO once several senders wait for the socket to drain.
import { dial, type Connection } from '../transport/index.ts';
import { Role, type AllreduceChunkBody } from '../wire/codec.ts';
import type { RingOp } from './ring-op.ts';

export interface RightLinkOptions {
  nodeId: string;
  secret: Uint8Array;
  /** The neighbour. */
  peer: { nodeId: string; address: string };
  /** Announced in the hello: our listener's URL. */
  address: string;
  /** Announced in the hello (its ring_epoch field): the ring this link serves. */
  ringEpoch: number;
  maxFrameBytes: number;
  /** Give up dialling after this long. */
  connectTimeoutMs: number;
  /** Payload bytes of one chunk handed to the socket. */
  onSent: (bytes: number) => void;
  /** The link failed (could not connect, or closed while we still wanted it). */
  onBroken: (why: string) => void;
}

interface Item { body: AllreduceChunkBody; op: RingOp }

export class RightLink {
  private conn: Connection | null = null;
  private queue: Item[] = [];
  private head = 0;
  private pumping = false;
  private closedByUs = false;

  constructor(private readonly opts: RightLinkOptions) {
    void this.connect();
  }

  get peerId(): string { return this.opts.peer.nodeId; }

  private async connect(): Promise<void> {
    const deadline = performance.now() + this.opts.connectTimeoutMs;
    let lastErr = '';
    for (let i = 0; !this.closedByUs; i++) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      try {
        const { conn } = await dial(this.opts.peer.address, {
          nodeId: this.opts.nodeId, secret: this.opts.secret, role: Role.Worker, address: this.opts.address, ringEpoch: this.opts.ringEpoch,
          maxFrameBytes: this.opts.maxFrameBytes, connectTimeoutMs: Math.max(100, Math.min(left, 5_000)),
        });
        if (this.closedByUs) { void conn.close(1000, 'ring changed'); return; }
        this.conn = conn;
        void conn.closed.then(({ code, reason }) => {
          if (!this.closedByUs) this.opts.onBroken(`link to right neighbour ${this.peerId} closed (${code}${reason ? ` ${reason}` : ''})`);
        });
        this.pump();
        return;
      } catch (e) {
        lastErr = (e as Error).message;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 25 * 2 ** i)));
      }
    }
    if (!this.closedByUs) this.opts.onBroken(`cannot reach right neighbour ${this.peerId} at ${this.opts.peer.address} within ${this.opts.connectTimeoutMs} ms: ${lastErr || 'no attempt made'}`);
    return;
  }

  send(body: AllreduceChunkBody, op: RingOp): void {
    this.queue.push({ body, op });
    this.pump();
  }

  /** Sends queued chunks in order; one loop at a time. */
  private pump(): void {
    if (this.pumping || !this.conn) return;
    this.pumping = true;
    void this.drain().finally(() => { this.pumping = false; });
  }

  private async drain(): Promise<void> {
    const conn = this.conn!;
    while (this.head < this.queue.length && !this.closedByUs) {
      const item = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Item;
      if (this.head > 1024 && this.head * 2 > this.queue.length) { this.queue = this.queue.slice(this.head); this.head = 0; }
      if (item.op.settled) continue; // a failed op: its range of the caller's buffer is no longer ours to read
      try {
        // Encodes (copies the values out of the op's buffer) before it returns, possibly after
        // waiting for the socket to drain below its high-water mark.
        await conn.notify(item.body);
      } catch {
        return; // closed: onBroken reports it and fails the ops
      }
      this.opts.onSent(item.body.values.byteLength / (item.body.f16 ? 2 : 1));
      item.op.sent();
    }
    this.queue = [];
    this.head = 0;
  }

  async close(reason = 'ring changed'): Promise<void> {
    this.closedByUs = true;
    this.queue = [];
    this.head = 0;
    // A dial still in progress closes its connection itself when it sees closedByUs.
    if (this.conn) await this.conn.close(1000, reason);
  }
}
