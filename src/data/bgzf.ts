// BGZF (blocked gzip, as `bgzip` from htslib writes it): a gzip file made of independent gzip
// members of at most 64 KiB each, every member's header carrying its own compressed size in a
// `BC` extra subfield. Any gzip reader reads it as one stream; a reader that knows the format can
// start at any block, which is what lets several workers read their own parts of one compressed
// file. Here: telling a file's kind from its first bytes, the size of the block at an offset, and
// a writer (tests, and anyone without htslib). Everything uses Node's zlib, no native addon.
import { open, type FileHandle } from 'node:fs/promises';
import { crc32, deflateRawSync } from 'node:zlib';

export type DataFileKind = 'plain' | 'gzip' | 'bgzf';

/** Bytes of a block header up to and including BSIZE (with the one BC subfield bgzip writes). */
export const BGZF_HEADER = 18;
/** Uncompressed bytes per block that bgzip uses (so a compressed block stays under 64 KiB). */
export const BGZF_BLOCK_DATA = 0xff00;

/** The total size of the BGZF block whose header is `h` (at least 12 bytes), or null when it is no BGZF block. */
export function bgzfBlockSize(h: Uint8Array): number | null {
  if (h.length < 12 || h[0] !== 0x1f || h[1] !== 0x8b || h[2] !== 8 || !(h[3]! & 4)) return null;
  const xlen = h[10]! | (h[11]! << 8);
  for (let at = 12; at + 4 <= 12 + xlen && at + 4 <= h.length;) {
    const slen = h[at + 2]! | (h[at + 3]! << 8);
    if (h[at] === 66 && h[at + 1] === 67 && slen === 2 && at + 6 <= h.length) return (h[at + 4]! | (h[at + 5]! << 8)) + 1;
    at += 4 + slen;
  }
  return null;
}

/** Plain text, gzip, or BGZF, told by the first bytes (not the name). */
export async function dataFileKind(path: string): Promise<DataFileKind> {
  const fh = await open(path, 'r');
  try {
    const h = Buffer.alloc(BGZF_HEADER + 8);
    const { bytesRead } = await fh.read(h, 0, h.length, 0);
    if (bytesRead < 2 || h[0] !== 0x1f || h[1] !== 0x8b) return 'plain';
    return bgzfBlockSize(h.subarray(0, bytesRead)) === null ? 'gzip' : 'bgzf';
  } finally {
    await fh.close();
  }
}

/**
 * The BGZF blocks of `fh` (compressed, whole, with their offsets), read 1 MiB at a time (one read
 * per block cost about 5x the inflate on 64 KiB blocks).
 */
export async function* bgzfBlocks(fh: FileHandle, path: string): AsyncGenerator<{ at: number; block: Buffer }> {
  const size = (await fh.stat()).size;
  let buf = Buffer.alloc(0), bufAt = 0; // file bytes [bufAt, bufAt + buf.length)
  const have = (at: number, n: number) => at + n <= bufAt + buf.length;
  const refill = async (at: number, n: number) => {
    buf = Buffer.alloc(Math.min(Math.max(n, 1 << 20), size - at));
    bufAt = at;
    const { bytesRead } = await fh.read(buf, 0, buf.length, at);
    buf = buf.subarray(0, bytesRead);
  };
  for (let at = 0; at < size;) {
    if (!have(at, BGZF_HEADER + 8)) await refill(at, BGZF_HEADER + 8);
    const n = bgzfBlockSize(buf.subarray(at - bufAt, at - bufAt + BGZF_HEADER + 8));
    if (n === null) throw new Error(`${path}: no BGZF block header at byte ${at} (a gzip file whose first member is BGZF but not the rest? recompress it with bgzip)`);
    if (!have(at, n)) await refill(at, n);
    if (!have(at, n)) throw new Error(`${path}: the BGZF block at byte ${at} is cut short (${bufAt + buf.length - at} of ${n} bytes): truncated file`);
    yield { at, block: buf.subarray(at - bufAt, at - bufAt + n) };
    at += n;
  }
}

function block(data: Uint8Array): Buffer {
  const cdata = deflateRawSync(data);
  const size = BGZF_HEADER + cdata.length + 8;
  if (size > 0x10000) throw new Error(`BGZF block of ${size} bytes: over 64 KiB (write less data per block)`);
  const h = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, 66, 67, 2, 0, 0, 0]);
  h.writeUInt16LE(size - 1, 16);
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc32(data) >>> 0, 0);
  t.writeUInt32LE(data.length >>> 0, 4);
  return Buffer.concat([h, cdata, t]);
}

/** `data` as a BGZF file: blocks of `perBlock` uncompressed bytes, then the empty end-of-file block. */
export function bgzfCompress(data: Uint8Array, perBlock = BGZF_BLOCK_DATA): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += perBlock) out.push(block(data.subarray(at, at + perBlock)));
  out.push(block(new Uint8Array(0)));
  return Buffer.concat(out);
}
