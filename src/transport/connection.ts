// One authenticated WebSocket link, used the same way on both ends: requests matched to replies
// by id with a timeout each, one-way notifications, and bounded send buffering (a sender waits
// when the socket has more than `highWaterBytes` queued instead of growing memory without end).
import type WebSocket from 'ws';
import * as flatbuffers from 'flatbuffers';
import { decode, encode, ErrorCode, WireError, type Body, type BodyOf, type BodyType, type Envelope } from '../wire/codec.ts';
import { replyTypesOf, UnexpectedReplyError, type ReplyType, type RequestBody } from '../wire/replies.ts';
import { ConnectionClosedError, RemoteError, RequestTimeoutError, RpcError, errorCodeOf } from './errors.ts';

// The error classes live in errors.ts; importing them from here works too.
export { RemoteError, RpcError, ConnectionClosedError, RequestTimeoutError, errorCodeOf } from './errors.ts';

export type RequestHandler = (env: Envelope, conn: Connection) => Body | void | Promise<Body | void>;

export interface ConnectionOptions {
  nodeId: string;
  /** Cluster-view epoch stamped on outgoing frames. */
  epoch?: () => number;
  requestTimeoutMs?: number;
  highWaterBytes?: number;
  onRequest?: RequestHandler;
  onMalformed?: (err: WireError) => void;
}

export interface ConnectionStats { sentBytes: number; receivedBytes: number; sentFrames: number; receivedFrames: number; pending: number }

interface Pending {
  resolve: (e: Envelope) => void; reject: (e: Error) => void; timer: NodeJS.Timeout;
  /** The request's body type and the reply types it may get (see wire/replies.ts). */
  request: BodyType; expect: readonly BodyType[];
}

export class Connection {
  /** The authenticated peer's node id and role (set by the handshake). */
  peerId = '?';
  peerRole = -1;
  peerAddress = '';
  /** The allreduce ring epoch the peer's hello named (its link to its ring neighbour), if any. */
  peerRingEpoch: number | undefined;
  readonly stats: ConnectionStats = { sentBytes: 0, receivedBytes: 0, sentFrames: 0, receivedFrames: 0, pending: 0 };
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private drainWaiters: (() => void)[] = [];
  private isClosed = false;
  /** Builders whose frames the socket has finished with, reused so big frames need no fresh memory. */
  private builders: flatbuffers.Builder[] = [];
  private closeInfo = { code: 0, reason: '' };
  onRequest?: RequestHandler;

  constructor(readonly ws: WebSocket, private readonly opts: ConnectionOptions) {
    this.onRequest = opts.onRequest;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        this.closeInfo = { code, reason: reason.toString() };
        const why = `connection to ${this.peerId} closed (${code}${reason.length ? ` ${reason}` : ''})`;
        for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new ConnectionClosedError(why)); }
        this.pending.clear();
        for (const w of this.drainWaiters.splice(0)) w();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => { /* 'close' follows; errors are reported through it */ });
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
  }

  get isOpen(): boolean { return !this.isClosed; }

  private epoch(): number { return this.opts.epoch?.() ?? 0; }

  private onFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    this.stats.receivedBytes += buf.byteLength;
    this.stats.receivedFrames++;
    let env: Envelope;
    try {
      if (!isBinary) throw new WireError('text frames are not part of the protocol');
      env = decode(buf);
    } catch (e) {
      const err = e instanceof WireError ? e : new WireError(String(e));
      this.opts.onMalformed?.(err);
      this.sendRaw({ requestId: 0, reply: true, sender: this.opts.nodeId, epoch: this.epoch(), body: { type: 'error', code: err.code, message: err.message } });
      return;
    }
    if (env.reply) {
      const p = this.pending.get(env.requestId);
      if (!p) return; // late reply after a timeout: nothing waits for it
      this.pending.delete(env.requestId);
      this.stats.pending = this.pending.size;
      clearTimeout(p.timer);
      if (env.body.type === 'error') p.reject(new RemoteError(env.body.code, env.body.message, this.peerId));
      else if (!p.expect.includes(env.body.type)) p.reject(new UnexpectedReplyError(p.request, p.expect, env.body.type, this.peerId));
      else p.resolve(env);
      return;
    }
    void this.handle(env);
  }

  private async handle(env: Envelope): Promise<void> {
    let body: Body | void;
    try {
      if (!this.onRequest) throw new RpcError(ErrorCode.Unsupported, `no handler for ${env.body.type}`);
      body = await this.onRequest(env, this);
    } catch (e) {
      const code = errorCodeOf(e);
      body = { type: 'error', code, message: (e as Error).message };
    }
    if (env.requestId !== 0 && body) {
      // The peer may be gone by the time the answer is ready: nothing to do then.
      await this.send({ requestId: env.requestId, reply: true, sender: this.opts.nodeId, epoch: this.epoch(), body }).catch(() => {});
    }
  }

  private sendRaw(env: Envelope, done?: (err?: Error) => void): number {
    if (this.isClosed) { done?.(new ConnectionClosedError(`connection to ${this.peerId} is closed`)); return 0; }
    const builder = this.builders.pop() ?? new flatbuffers.Builder(1024);
    const bytes = encode(env, builder);
    const owner = bytes.buffer === builder.dataBuffer().bytes().buffer ? builder : null;
    this.stats.sentBytes += bytes.byteLength;
    this.stats.sentFrames++;
    this.ws.send(bytes, { binary: true }, (err) => {
      // ws is done with the bytes: the builder (or the larger one encode made) can be reused.
      if (this.builders.length < 4) this.builders.push(owner ?? adoptBuilder(bytes));
      if (this.ws.bufferedAmount <= (this.opts.highWaterBytes ?? 32 << 20) / 2) {
        for (const w of this.drainWaiters.splice(0)) w();
      }
      done?.(err ?? undefined);
    });
    return bytes.byteLength;
  }

  /** Sends one frame, first waiting while the socket's send buffer is over the high-water mark. */
  async send(env: Envelope): Promise<void> {
    const hwm = this.opts.highWaterBytes ?? 32 << 20;
    while (!this.isClosed && this.ws.bufferedAmount > hwm) {
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
    if (this.isClosed) throw new ConnectionClosedError(`connection to ${this.peerId} is closed`);
    this.sendRaw(env);
  }

  notify(body: Body): Promise<void> {
    return this.send({ requestId: 0, reply: false, sender: this.opts.nodeId, epoch: this.epoch(), body });
  }

  /**
   * Sends a request and resolves with its reply, whose type the request's type determines
   * (REPLY_OF); `expect` narrows it where a request has several (a handoff page). A reply of
   * another kind rejects with UnexpectedReplyError, an error reply with RemoteError.
   */
  async request<B extends RequestBody, R extends ReplyType<B['type']> = ReplyType<B['type']>>(
    body: B, timeoutMs = this.opts.requestTimeoutMs ?? 30_000, expect?: R,
  ): Promise<Envelope<BodyOf<R>>> {
    if (this.isClosed) throw new ConnectionClosedError(`connection to ${this.peerId} is closed (${this.closeInfo.code} ${this.closeInfo.reason})`);
    const requestId = this.nextId++;
    const reply = new Promise<Envelope>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        this.stats.pending = this.pending.size;
        reject(new RequestTimeoutError(`${body.type} to ${this.peerId} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer, request: body.type, expect: replyTypesOf(body.type).filter((t) => expect === undefined || t === expect) });
      this.stats.pending = this.pending.size;
    });
    try {
      await this.send({ requestId, reply: false, sender: this.opts.nodeId, epoch: this.epoch(), body });
    } catch (e) {
      const p = this.pending.get(requestId);
      if (p) { clearTimeout(p.timer); this.pending.delete(requestId); }
      throw e;
    }
    return reply as Promise<Envelope<BodyOf<R>>>;
  }

  close(code = 1000, reason = ''): Promise<unknown> {
    if (!this.isClosed) {
      try { this.ws.close(code, reason); } catch { this.ws.terminate(); }
      // A peer that never answers the close handshake is cut off.
      const t = setTimeout(() => this.ws.terminate(), 2000);
      t.unref();
    }
    return this.closed;
  }
}

/** A builder wrapping a frame's buffer, for reuse after encode had to allocate a larger one. */
function adoptBuilder(bytes: Uint8Array): flatbuffers.Builder {
  const b = new flatbuffers.Builder(1);
  (b as unknown as { bb: flatbuffers.ByteBuffer }).bb = new flatbuffers.ByteBuffer(new Uint8Array(bytes.buffer as ArrayBuffer));
  b.clear();
  return b;
}
