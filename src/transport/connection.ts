// One authenticated link (a WebSocket, or a framed stream: framed-socket.ts), used the same way
// on both ends: requests matched to replies by id with a timeout each, one-way notifications,
// and bounded memory: a sender waits when the socket has more than `highWaterBytes` queued, and
// at most `maxInFlight` received frames (and `maxInFlightBytes` of them) are being handled at
// once. At that limit the socket is not read, so a peer that sends requests and never reads the
// replies is held back by TCP, not by our memory.
import type { Link } from './framed-socket.ts';
import * as flatbuffers from 'flatbuffers';
import { decode, encode, encodeWithHole, ErrorCode, WireError, type Body, type BodyOf, type BodyType, type Envelope, type FrameHole } from '../wire/codec.ts';
import { replyTypesOf, UnexpectedReplyError, type ReplyType, type RequestBody } from '../wire/replies.ts';
import { ConnectionClosedError, RemoteError, RequestTimeoutError, RpcError, errorCodeOf } from './errors.ts';
import { DEFAULT_LIMITS } from './limits.ts';

// The error classes live in errors.ts; importing them from here works too.
export { RemoteError, RpcError, ConnectionClosedError, RequestTimeoutError, errorCodeOf } from './errors.ts';

/** Frames up to this size are copied out of their builder before they are queued (see sendRaw). */
const SMALL_FRAME_BYTES = 4096;
/**
 * What a frame waiting in the socket's queue costs beyond its bytes (write requests, callbacks,
 * buffers): counted against the high-water mark, so many tiny queued replies are bounded too.
 */
const QUEUED_FRAME_OVERHEAD = 512;
/** readyState of an open link (ws's WebSocket.OPEN; FramedSocket uses the same values). */
const LINK_OPEN = 1;

export type RequestHandler = (env: Envelope, conn: Connection) => Body | void | Promise<Body | void>;

export interface ConnectionOptions {
  nodeId: string;
  /** Cluster-view epoch stamped on outgoing frames. */
  epoch?: () => number;
  requestTimeoutMs?: number;
  /** A send waits while the socket has more than this queued (default 32 MiB). */
  highWaterBytes?: number;
  /** Received frames handled at once: requests, notifications, malformed frames (default 256). */
  maxInFlight?: number;
  /** Bytes of received frames handled at once (default 64 MiB; one frame is always let in). */
  maxInFlightBytes?: number;
  onRequest?: RequestHandler;
  onMalformed?: (err: WireError) => void;
}

export interface ConnectionStats {
  sentBytes: number; receivedBytes: number; sentFrames: number; receivedFrames: number; pending: number;
  /** Received frames being handled now, and how often reading stopped at the in-flight limit. */
  inFlight: number; readPauses: number;
}

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
  readonly stats: ConnectionStats = { sentBytes: 0, receivedBytes: 0, sentFrames: 0, receivedFrames: 0, pending: 0, inFlight: 0, readPauses: 0 };
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private drainWaiters: (() => void)[] = [];
  private isClosed = false;
  /** Builders whose frames the socket has finished with, reused so big frames need no fresh memory. */
  private builders: flatbuffers.Builder[] = [];
  private closeInfo = { code: 0, reason: '' };
  private inFlightBytes = 0;
  /** Frames read while at the in-flight limit (ws empties its buffer after a pause), in order. */
  private backlog: { buf: Uint8Array; isBinary: boolean }[] = [];
  private backlogHead = 0;
  /** Reasons besides the in-flight limit to keep the socket unread (holdReading). */
  private holds = 0;
  private drainScheduled = false;
  /** Frames handed to ws whose write has not completed. */
  private unflushed = 0;
  private readonly maxInFlight: number;
  private readonly maxInFlightBytes: number;
  private readonly highWaterBytes: number;
  onRequest?: RequestHandler;

  constructor(readonly ws: Link, private readonly opts: ConnectionOptions) {
    this.onRequest = opts.onRequest;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_LIMITS.maxInFlight;
    this.maxInFlightBytes = opts.maxInFlightBytes ?? DEFAULT_LIMITS.maxInFlightBytes;
    this.highWaterBytes = opts.highWaterBytes ?? DEFAULT_LIMITS.sendHighWaterBytes;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.isClosed = true;
        this.closeInfo = { code, reason: reason.toString() };
        const why = `connection to ${this.peerId} closed (${code}${reason.length ? ` ${reason}` : ''})`;
        for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new ConnectionClosedError(why)); }
        this.pending.clear();
        for (const w of this.drainWaiters.splice(0)) w();
        this.backlog = [];
        this.backlogHead = 0;
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => { /* 'close' follows; errors are reported through it */ });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
  }

  get isOpen(): boolean { return !this.isClosed; }

  /**
   * Whether a frame sent now can still reach the peer. A link that is closing (a close frame
   * either way, or the peer hung up) is not: replies waiting for the socket must then not be
   * encoded, or a peer that floods requests and hangs up makes us build every reply for nothing.
   */
  private get sendable(): boolean { return !this.isClosed && this.ws.readyState === LINK_OPEN; }

  private epoch(): number { return this.opts.epoch?.() ?? 0; }

  private onFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    this.stats.receivedBytes += buf.byteLength;
    this.stats.receivedFrames++;
    if (this.backlogHead < this.backlog.length || !this.admits(buf.byteLength)) {
      this.backlog.push({ buf, isBinary });
      this.updateReading();
      return;
    }
    this.process(buf, isBinary);
  }

  private admits(bytes: number): boolean {
    if (this.stats.inFlight === 0) return true;
    return this.stats.inFlight < this.maxInFlight && this.inFlightBytes + bytes <= this.maxInFlightBytes;
  }

  private process(buf: Uint8Array, isBinary: boolean): void {
    let env: Envelope;
    try {
      if (!isBinary) throw new WireError('text frames are not part of the protocol');
      env = decode(buf);
    } catch (e) {
      const err = e instanceof WireError ? e : new WireError(String(e));
      this.opts.onMalformed?.(err);
      // The error reply counts against the in-flight limit and waits for the socket like any other.
      const reply = this.send({ requestId: err.requestId ?? 0, reply: true, sender: this.opts.nodeId, epoch: this.epoch(), body: { type: 'error', code: err.code, message: err.message } });
      this.track(buf.byteLength, reply.catch(() => {}));
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
    this.track(buf.byteLength, this.handle(env));
  }

  /** Counts a received frame as in flight until `done` settles, then lets waiting frames in. */
  private track(bytes: number, done: Promise<void>): void {
    this.stats.inFlight++;
    this.inFlightBytes += bytes;
    this.updateReading();
    void done.finally(() => {
      this.stats.inFlight--;
      this.inFlightBytes -= bytes;
      if (this.backlogHead < this.backlog.length) this.scheduleDrain();
      else this.updateReading();
    });
  }

  /**
   * Waiting frames are let in from a macrotask, a limit's worth at a time: drained from the
   * microtasks that finish handlers, a flood of small frames would hold the event loop (and
   * every timer, heartbeats included) until the whole backlog was through.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      while (this.backlogHead < this.backlog.length && this.admits(this.backlog[this.backlogHead]!.buf.byteLength)) {
        const f = this.backlog[this.backlogHead]!;
        this.backlog[this.backlogHead++] = undefined as never;
        if (this.backlogHead === this.backlog.length) { this.backlog = []; this.backlogHead = 0; }
        this.process(f.buf, f.isBinary);
      }
      this.updateReading();
    });
  }

  /** Reads the socket only when nothing holds it and frames can be let in. */
  private updateReading(): void {
    if (this.isClosed) return;
    const stop = this.holds > 0 || this.backlogHead < this.backlog.length
      || this.stats.inFlight >= this.maxInFlight || this.inFlightBytes >= this.maxInFlightBytes;
    if (stop && !this.ws.isPaused) {
      if (this.holds === 0) this.stats.readPauses++;
      this.ws.pause();
    } else if (!stop && this.ws.isPaused) this.ws.resume();
  }

  /** Stops reading this link until a matching releaseReading (for callers with buffers of their own to bound). */
  holdReading(): void { this.holds++; this.updateReading(); }

  releaseReading(): void {
    if (this.holds > 0) this.holds--;
    this.updateReading();
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

  private sendRaw(env: Envelope): void {
    if (!this.sendable) return;
    const builder = this.builders.pop() ?? new flatbuffers.Builder(1024);
    // A link that writes several buffers as one frame sends big values (a push's gradients) from
    // where they are, not copied into the frame (~1.4 ms a step of the worker's CPU at the gpu preset).
    let hole: FrameHole | null = null, bytes: Uint8Array;
    if (this.ws.sendParts) ({ bytes, hole } = encodeWithHole(env, builder, SMALL_FRAME_BYTES)); // never in a small frame
    else bytes = encode(env, builder);
    const owner = bytes.buffer === builder.dataBuffer().bytes().buffer ? builder : null;
    // A small frame is copied out so that its builder is free at once: otherwise each of the
    // thousands of small replies a slow reader can have queued would hold a builder of its own.
    const small = bytes.byteLength <= SMALL_FRAME_BYTES;
    if (small) {
      bytes = bytes.slice();
      if (owner && this.builders.length < 4) this.builders.push(owner);
    }
    this.stats.sentBytes += bytes.byteLength;
    this.stats.sentFrames++;
    this.unflushed++;
    const done = () => {
      this.unflushed--;
      // ws is done with the bytes: the builder (or the larger one encode made) can be reused.
      if (!small && this.builders.length < 4) this.builders.push(owner ?? adoptBuilder(bytes));
      if (this.queuedBytes() <= this.highWaterBytes / 2) {
        for (const w of this.drainWaiters.splice(0)) w();
      }
    };
    if (!hole) { this.ws.send(bytes, { binary: true }, done); return; }
    const chunks = hole.chunks.map((c) => new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    this.ws.sendParts!([bytes.subarray(0, hole.at), ...chunks, bytes.subarray(hole.at + hole.bytes)], done);
  }

  /** What the frames handed to ws and not yet written cost: their bytes, and bookkeeping for each. */
  private queuedBytes(): number {
    return this.ws.bufferedAmount + this.unflushed * QUEUED_FRAME_OVERHEAD;
  }

  /** Sends one frame, first waiting while the socket's send buffer is over the high-water mark. */
  async send(env: Envelope): Promise<void> {
    while (this.sendable && this.queuedBytes() > this.highWaterBytes) {
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
    if (!this.sendable) throw new ConnectionClosedError(`connection to ${this.peerId} is ${this.isClosed ? 'closed' : 'closing'}`);
    this.sendRaw(env);
  }

  notify(body: Body): Promise<void> {
    return this.send({ requestId: 0, reply: false, sender: this.opts.nodeId, epoch: this.epoch(), body });
  }

  /**
   * Sends a request and resolves with its reply, whose type the request's type determines
   * (REPLY_OF); `expect` narrows it where a request has several. A reply of
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
