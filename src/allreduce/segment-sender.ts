// The sending end of the ring's data stream to the right neighbour: the socket the neighbour
// dialled (and authenticated on, data-handshake.ts), one ordered queue shared by every op.
// Each segment goes out as its header (from a slab of headers made once) and its values written
// straight from the op's buffer (no copy into a frame; f16 converts into a fresh array). The op is
// told `sent()` when the socket has written the values, so the caller's buffer is free only then.
import type { Socket } from 'node:net';
import { f32ToF16 } from '../wire/f16.ts';
import { FLAG_F16, HEADER_WORDS, writeHeader, type SegmentHeader } from './segment-header.ts';

/** A segment to send: its header fields, the values (a view of the op's buffer) and its op. */
export interface OutSegment extends SegmentHeader {
  values: Float32Array;
  op: { readonly settled: boolean; sent(): void };
}

/** Segments written and not yet confirmed, at most; also the number of header slots. */
const SLOTS = 4096;
/** Stop handing the socket more while it holds this much unwritten (16 MiB: a few segments). */
const HIGH_WATER_BYTES = 16 << 20;
const PAD = new Uint8Array(2);

export class SegmentSender {
  private socket: Socket | null = null;
  private queue: (OutSegment | undefined)[] = [];
  private head = 0;
  private readonly headerWords = new Uint32Array(SLOTS * HEADER_WORDS);
  private readonly headerViews: Uint8Array[] = [];
  private nextSlot = 0;
  private inFlight = 0;
  private closed = false;

  constructor(private readonly onBytes: (payloadBytes: number) => void) {
    for (let i = 0; i < SLOTS; i++) this.headerViews.push(new Uint8Array(this.headerWords.buffer, i * HEADER_WORDS * 4, HEADER_WORDS * 4));
  }

  get attached(): boolean { return this.socket !== null; }

  /** The authenticated stream from the right neighbour's dial: queued segments go out now. */
  attach(socket: Socket, onClosed: () => void): void {
    this.socket = socket;
    // The receiving side sends nothing after its hello: any byte from it is a broken peer.
    socket.on('data', () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => { if (!this.closed) onClosed(); });
    socket.on('drain', () => this.pump());
    socket.resume();
    this.pump();
  }

  send(seg: OutSegment): void {
    this.queue.push(seg);
    this.pump();
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.socket?.destroy();
  }

  private pump(): void {
    const socket = this.socket;
    if (!socket || this.closed) return;
    while (this.head < this.queue.length && this.inFlight < SLOTS && socket.writableLength < HIGH_WATER_BYTES && !socket.destroyed) {
      const seg = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.queue.length) { this.queue = this.queue.slice(this.head); this.head = 0; }
      if (seg.op.settled) continue; // a failed op: its range of the caller's buffer is no longer ours to read
      const slot = this.nextSlot;
      this.nextSlot = (slot + 1) % SLOTS;
      writeHeader(this.headerWords, slot * HEADER_WORDS, seg);
      const v = seg.values;
      const f16 = (seg.flags & FLAG_F16) !== 0;
      const payload = f16 ? new Uint8Array(f32ToF16(v).buffer) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      this.inFlight++;
      socket.cork();
      socket.write(this.headerViews[slot]!);
      const pad = f16 && v.length % 2 === 1;
      const done = (err?: Error | null) => this.written(seg, payload.byteLength + (pad ? 2 : 0), err);
      socket.write(payload, pad ? undefined : done);
      if (pad) socket.write(PAD, done);
      socket.uncork();
    }
    if (this.head === this.queue.length) { this.queue = []; this.head = 0; }
  }

  private written(seg: OutSegment, bytes: number, err?: Error | null): void {
    this.inFlight--;
    if (this.closed || err) return; // the socket's close breaks the ring and fails the op
    this.onBytes(bytes);
    seg.op.sent();
    this.pump();
  }
}
