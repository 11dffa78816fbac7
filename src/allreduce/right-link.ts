// The control link to the right neighbour for one ring epoch: the authenticated ws link, dialled
// once (with retries while the neighbour's listener is still coming up). It names the ring in its
// hello (ring_epoch) and tells either side at once when the other goes away; the segments
// themselves travel on the data stream (segment-sender.ts, segment-receiver.ts).
import { dial, type Connection, type TlsCredentials } from '../transport/index.ts';
import { Role } from '../wire/codec.ts';

export interface RightLinkOptions {
  nodeId: string;
  secret: Uint8Array;
  tls?: TlsCredentials;
  /** The neighbour. */
  peer: { nodeId: string; address: string };
  /** Announced in the hello: our listener's URL. */
  address: string;
  /** Announced in the hello (its ring_epoch field): the ring this link serves. */
  ringEpoch: number;
  maxFrameBytes: number;
  /** Give up dialling after this long. */
  connectTimeoutMs: number;
  /** The link failed (could not connect, or closed while we still wanted it). */
  onBroken: (why: string) => void;
}

export class RightLink {
  private conn: Connection | null = null;
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
          nodeId: this.opts.nodeId, secret: this.opts.secret, tls: this.opts.tls, role: Role.Worker, address: this.opts.address, ringEpoch: this.opts.ringEpoch,
          maxFrameBytes: this.opts.maxFrameBytes, connectTimeoutMs: Math.max(100, Math.min(left, 5_000)),
        });
        if (this.closedByUs) { void conn.close(1000, 'ring changed'); return; }
        this.conn = conn;
        void conn.closed.then(({ code, reason }) => {
          if (!this.closedByUs) this.opts.onBroken(`link to right neighbour ${this.peerId} closed (${code}${reason ? ` ${reason}` : ''})`);
        });
        return;
      } catch (e) {
        lastErr = (e as Error).message;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 25 * 2 ** i)));
      }
    }
    if (!this.closedByUs) this.opts.onBroken(`cannot reach right neighbour ${this.peerId} at ${this.opts.peer.address} within ${this.opts.connectTimeoutMs} ms: ${lastErr || 'no attempt made'}`);
    return;
  }

  async close(reason = 'ring changed'): Promise<void> {
    this.closedByUs = true;
    // A dial still in progress closes its connection itself when it sees closedByUs.
    if (this.conn) await this.conn.close(1000, reason);
  }
}
