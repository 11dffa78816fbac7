// A message link over one TCP (or TLS) stream with a 5-byte frame header, [u32 LE payload
// bytes][u8 opcode], instead of WebSocket framing: the part of ws's WebSocket API that
// Connection and Listener use (message / close / error events, send with a completion callback,
// bufferedAmount, pause / resume, close with a code and reason, terminate), so either carries a
// Connection. It exists for speed: on bench ps's traffic it costs ~0.7 ms less CPU a round than
// ws (bench/echo-ab.ts, bench/RESULTS.md session 9). Opcodes and close codes are ws's, so the
// two behave alike to callers: a frame whose header names more than `maxPayload` bytes is refused
// from the header, before any of it is buffered, closing the link with 1009 both ends see.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

const HEADER = 5;
/**
 * A dialled plain-TCP link reads through Node's `onread` (framed-upgrade.ts): into a reused
 * scratch of SCRATCH_BYTES, or, while at least DIRECT_READ bytes of a frame are still to come,
 * straight into the frame. A 6 MB pull reply then comes in ~10 reads with no chunk allocated and
 * no copy, where 'data' events bring ~100 new 64 KiB chunks, each copied into the frame.
 */
const SCRATCH_BYTES = 64 << 10, DIRECT_READ = 16 << 10;
const OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8;
/** ws's readyState values (tests compare with WebSocket.OPEN). */
const OPEN = 1, CLOSING = 2, CLOSED = 3;
/** A close frame: a u16 code and a reason of at most 123 bytes, as in WebSocket. */
const MAX_CLOSE_PAYLOAD = 125;
/** After a close frame either way, a peer that does not hang up is cut off this much later (ws's closeTimeout). */
const CLOSE_TIMEOUT_MS = 30_000;

/** A peer broke the framing: the error ws gives for the same fault, with its close code. */
export class FrameError extends Error {
  override name = 'FrameError';
  constructor(message: string, readonly code: string, readonly closeCode: number) { super(message); }
}

/** The subset of ws's WebSocket that Connection and Listener use; FramedSocket and WebSocket both are one. */
export interface Link extends EventEmitter {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly isPaused: boolean;
  send(data: Uint8Array | string, opts?: { binary?: boolean }, cb?: (err?: Error) => void): void;
  /** One binary frame of `parts` one after the other, written as they are (FramedSocket only; ws has no such call). */
  sendParts?(parts: Uint8Array[], cb?: (err?: Error) => void): void;
  pause(): void;
  resume(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export class FramedSocket extends EventEmitter implements Link {
  readyState = OPEN;
  /** Largest payload accepted from now on (raised after the hello, as ws's maxPayload is). */
  maxPayload: number;
  private head = Buffer.alloc(0);
  /** The frame being filled across chunks, its opcode and how much of it is in. */
  private frame: Buffer | null = null;
  private frameOp = 0;
  private filled = 0;
  private closeCode = 1006;
  private closeReason = Buffer.alloc(0);
  private closeSent = false;
  /** Cleared on a received close frame or a framing error: what follows is read and dropped. */
  private reading = true;
  private closeTimer?: NodeJS.Timeout;
  /** start() was called: reads are frames (before it, the upgrade's response). */
  private started = false;
  /** The onread scratch (reused by every read: what a frame keeps of it is copied). */
  private scratch: Buffer | null = null;

  constructor(readonly socket: Socket, maxPayload: number) {
    super();
    this.maxPayload = maxPayload;
    socket.setNoDelay(true);
    socket.on('error', (e) => { this.readyState = CLOSING; this.emit('error', e); socket.destroy(); });
    socket.on('end', () => { this.readyState = CLOSING; socket.end(); });
    socket.once('close', () => {
      clearTimeout(this.closeTimer);
      this.readyState = CLOSED;
      this.emit('close', this.closeCode, this.closeReason);
    });
  }

  /** Starts reading frames; `head` holds bytes that came in before (after the HTTP upgrade). */
  start(head?: Uint8Array): void {
    this.started = true;
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk, false));
    if (head?.length) this.onData(Buffer.from(head.buffer, head.byteOffset, head.byteLength), false);
  }

  /** onread's buffer: where the next read lands (the rest of the frame being filled, or the scratch). */
  readTarget(): Uint8Array {
    const f = this.frame;
    if (this.started && this.reading && f && f.length - this.filled >= DIRECT_READ) return f.subarray(this.filled);
    return (this.scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES));
  }

  /** onread's callback: `n` bytes landed in `buf` (the last readTarget(), or Node's first buffer). */
  onRead(n: number, buf: Uint8Array): void {
    // Before start(), the upgrade's response: handed to dialFramed's 'data' listener, as a copy.
    if (!this.started) { this.socket.emit('data', Buffer.from(buf.subarray(0, n))); return; }
    if (this.frame && buf.buffer === this.frame.buffer && buf.byteOffset === this.frame.byteOffset + this.filled) { // straight into the frame
      this.filled += n;
      if (this.filled === this.frame!.length) {
        const f = this.frame!;
        this.frame = null;
        this.deliver(this.frameOp, f);
      }
      return;
    }
    this.onData(Buffer.from(buf.buffer, buf.byteOffset, n), true); // a reused buffer (the scratch)
  }

  get bufferedAmount(): number { return this.socket.writableLength; }
  get isPaused(): boolean { return this.socket.isPaused(); }
  // Once closing, the socket is read (and dropped) whatever the caller wants, as ws does: a peer
  // still writing must be able to finish, or it would never read our close frame and hang up.
  pause(): void { if (this.reading) this.socket.pause(); }
  resume(): void { this.socket.resume(); }

  send(data: Uint8Array | string, opts?: { binary?: boolean } | ((err?: Error) => void), cb?: (err?: Error) => void): void {
    if (typeof opts === 'function') { cb = opts; opts = undefined; }
    const text = typeof data === 'string' || opts?.binary === false;
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.readyState !== OPEN) {
      const err = new Error(`link is not open (readyState ${this.readyState})`);
      if (cb) queueMicrotask(() => cb!(err));
      return;
    }
    this.writeFrame(text ? OP_TEXT : OP_BINARY, bytes, cb);
  }

  /**
   * One binary frame whose payload is `parts` one after the other, each written from where it is
   * (one writev with the header): a push's gradients go out without a copy into the frame.
   * The parts must stay unchanged until `cb`.
   */
  sendParts(parts: Uint8Array[], cb?: (err?: Error) => void): void {
    if (this.readyState !== OPEN) {
      const err = new Error(`link is not open (readyState ${this.readyState})`);
      if (cb) queueMicrotask(() => cb!(err));
      return;
    }
    const h = Buffer.allocUnsafe(HEADER), some = parts.filter((p) => p.byteLength > 0);
    h.writeUInt32LE(some.reduce((n, p) => n + p.byteLength, 0), 0);
    h[4] = OP_BINARY;
    const done = cb ? (e?: Error | null) => cb(e ?? undefined) : undefined;
    this.socket.cork();
    this.socket.write(h, some.length ? undefined : done);
    some.forEach((p, i) => this.socket.write(p, i === some.length - 1 ? done : undefined));
    this.socket.uncork();
  }

  private writeFrame(op: number, bytes: Uint8Array, cb?: (err?: Error) => void): void {
    const h = Buffer.allocUnsafe(HEADER);
    h.writeUInt32LE(bytes.byteLength, 0);
    h[4] = op;
    // One syscall for both; the callback fires once the payload is written (its buffer is free).
    this.socket.cork();
    this.socket.write(h);
    this.socket.write(bytes, cb ? (e) => cb(e ?? undefined) : undefined);
    this.socket.uncork();
  }

  /** Sends a close frame (once), then ends the stream once the peer answers or hangs up. */
  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED) return;
    this.sendClose(code, reason);
    this.readyState = CLOSING;
  }

  terminate(): void {
    this.readyState = CLOSED;
    this.socket.destroy();
  }

  private sendClose(code: number, reason: string | Buffer): void {
    if (this.closeSent || this.socket.destroyed) return;
    this.closeSent = true;
    const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
    const p = Buffer.allocUnsafe(2 + Math.min(r.length, MAX_CLOSE_PAYLOAD - 2));
    p.writeUInt16BE(code, 0);
    r.copy(p, 2, 0, p.length - 2);
    this.writeFrame(OP_CLOSE, p);
  }

  /** A framing fault: close with its code, drop what follows, report it ('close' follows). */
  private fail(err: FrameError): void {
    this.frame = null;
    this.closeCode = err.closeCode;
    this.stopReading();
    this.sendClose(err.closeCode, '');
    this.socket.end();
    this.emit('error', err);
  }

  /** No more frames: the rest is dropped until the peer hangs up, or the close timeout. */
  private stopReading(): void {
    this.reading = false;
    this.readyState = CLOSING;
    this.socket.resume();
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS).unref();
  }

  /** `chunk` from a 'data' event, or (`reused`) the onread scratch: then a frame keeps a copy, not a view. */
  private onData(chunk: Buffer, reused: boolean): void {
    let at = 0;
    while (this.reading && at < chunk.length) {
      if (!this.frame) {
        if (this.head.length + chunk.length - at < HEADER) { this.head = Buffer.concat([this.head, chunk.subarray(at)]); return; }
        let h = chunk, hAt = at;
        if (this.head.length) { // a header split across chunks
          const need = HEADER - this.head.length;
          h = Buffer.concat([this.head, chunk.subarray(at, at + need)]);
          hAt = 0;
          at += need;
          this.head = Buffer.alloc(0);
        } else at += HEADER;
        const len = h.readUInt32LE(hAt), op = h[hAt + 4]!;
        if (op !== OP_BINARY && op !== OP_TEXT && op !== OP_CLOSE) return this.fail(new FrameError(`invalid opcode ${op}`, 'WS_ERR_INVALID_OPCODE', 1002));
        const limit = op === OP_CLOSE ? MAX_CLOSE_PAYLOAD : this.maxPayload;
        if (len > limit) return this.fail(new FrameError('Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', op === OP_CLOSE ? 1002 : 1009));
        if (chunk.length - at >= len) { // whole in this chunk: no copy (but from the scratch), as ws does
          const f = reused ? Buffer.from(chunk.subarray(at, at + len)) : chunk.subarray(at, at + len);
          at += len;
          this.deliver(op, f);
          continue;
        }
        this.frame = Buffer.allocUnsafe(len);
        this.frameOp = op;
        this.filled = 0;
      }
      const take = Math.min(this.frame.length - this.filled, chunk.length - at);
      chunk.copy(this.frame, this.filled, at, at + take);
      this.filled += take;
      at += take;
      if (this.filled === this.frame.length) {
        const f = this.frame;
        this.frame = null;
        this.deliver(this.frameOp, f);
      }
    }
  }

  private deliver(op: number, payload: Buffer): void {
    if (op !== OP_CLOSE) { this.emit('message', payload, op === OP_BINARY); return; }
    // The peer closes: answer with the same code (unless we closed first), then end the stream.
    this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    this.closeReason = Buffer.from(payload.subarray(2));
    this.stopReading();
    this.sendClose(this.closeCode, this.closeReason);
    this.socket.end();
  }
}
