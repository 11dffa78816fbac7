// The header in front of every segment on the ring's data stream (docs/wire.md, "Ring data
// stream"): nine little-endian u32 words, the last a checksum of the other eight, so a corrupted
// or mis-tagged header is refused before its payload touches any buffer. The payload follows:
// `count` values, 4 bytes each (2 with f16), zero-padded to a multiple of 4 bytes so that every
// header and every f32 payload starts 4-byte aligned in the stream.

export const HEADER_WORDS = 9;
export const HEADER_BYTES = HEADER_WORDS * 4;
/** 'HPSG' read as a little-endian u32: the first word of every segment header. */
export const SEGMENT_MAGIC = 0x47535048;
export const FLAG_F16 = 1;
/** The segment belongs to a direct exchange (W = 2, small buffers), not to the ring schedule. */
export const FLAG_EXCHANGE = 2;
/** The segment belongs to recursive halving/doubling (W a power of two), not to the ring schedule. */
export const FLAG_HALVING = 4;
const KNOWN_FLAGS = FLAG_F16 | FLAG_EXCHANGE | FLAG_HALVING;

export interface SegmentHeader {
  ringEpoch: number; opId: number; step: number; flags: number; segment: number; offset: number; count: number;
}

/** FNV-1a over the eight header words: cheap, and any single corrupted bit changes it. */
function checksum(w: Uint32Array, at: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < HEADER_WORDS - 1; i++) {
    const v = w[at + i]!;
    h = Math.imul(h ^ (v & 0xff), 0x01000193);
    h = Math.imul(h ^ ((v >>> 8) & 0xff), 0x01000193);
    h = Math.imul(h ^ ((v >>> 16) & 0xff), 0x01000193);
    h = Math.imul(h ^ (v >>> 24), 0x01000193);
  }
  return h >>> 0;
}

/** Writes a header at word `at` of `w` (assumes a little-endian host, as the whole wire does). */
export function writeHeader(w: Uint32Array, at: number, h: SegmentHeader): void {
  w[at] = SEGMENT_MAGIC;
  w[at + 1] = h.ringEpoch >>> 0;
  w[at + 2] = Math.floor(h.ringEpoch / 2 ** 32);
  w[at + 3] = h.opId;
  w[at + 4] = (h.step & 0xffff) | (h.flags << 16);
  w[at + 5] = h.segment;
  w[at + 6] = h.offset;
  w[at + 7] = h.count;
  w[at + 8] = checksum(w, at);
}

/**
 * Reads the header at word `at` into `out` (reused: nothing is allocated). Returns null when it
 * is well formed, else why not; the caller adds who sent it and closes the stream.
 */
export function readHeader(w: Uint32Array, at: number, out: SegmentHeader): string | null {
  if (w[at] !== SEGMENT_MAGIC) return `bad magic 0x${w[at]!.toString(16)} (the stream is out of step or not a hybridps ring stream)`;
  if (w[at + 8] !== checksum(w, at)) return 'header checksum mismatch (corrupted header)';
  out.ringEpoch = w[at + 1]! + w[at + 2]! * 2 ** 32;
  out.opId = w[at + 3]!;
  out.step = w[at + 4]! & 0xffff;
  out.flags = w[at + 4]! >>> 16;
  out.segment = w[at + 5]!;
  out.offset = w[at + 6]!;
  out.count = w[at + 7]!;
  if (out.flags & ~KNOWN_FLAGS) return `unknown flags 0x${out.flags.toString(16)}`;
  if (out.count === 0) return 'a segment with no values';
  return null;
}

/** Payload bytes on the wire for `count` values, padding included. */
export const payloadBytes = (count: number, f16: boolean): number => (f16 ? (count * 2 + 3) & ~3 : count * 4);
