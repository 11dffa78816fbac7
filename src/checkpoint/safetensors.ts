// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// u64 header length N, N bytes of UTF-8 JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// padded with spaces so the data starts 8-byte aligned, then the tensors' raw little-endian bytes,
// packed, offsets relative to the first byte after the header. Written atomically; read with the
// same validation as the reference implementation (offsets contiguous and covering the data
// exactly, byte lengths matching dtype x shape), with errors that name the file and the tensor.
import { open, type FileHandle } from 'node:fs/promises';
import { writeFileAtomic, writeFully } from './atomic-file.ts';

export type Dtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32' | 'I64' | 'U64' | 'F64';

export type TypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array;

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** Row-major data. F16/BF16 as raw Uint16Array bits, BOOL and F8 as Uint8Array. */
  data: TypedArray;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** Tensors by name (a null-prototype object, in file order). */
  tensors: Record<string, Tensor>;
}

export interface TensorInfo { dtype: Dtype; shape: number[]; dataOffsets: [number, number] }
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: Record<string, TensorInfo>;
  /** Absolute file offset of the data section. */
  dataStart: number;
  fileSize: number;
}

/** The reference implementation refuses headers larger than this. */
export const MAX_HEADER_BYTES = 100_000_000;

type Ctor = new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => TypedArray;
const DTYPES: Record<Dtype, { size: number; array: Ctor }> = {
  BOOL: { size: 1, array: Uint8Array }, U8: { size: 1, array: Uint8Array }, I8: { size: 1, array: Int8Array },
  F8_E5M2: { size: 1, array: Uint8Array }, F8_E4M3: { size: 1, array: Uint8Array },
  I16: { size: 2, array: Int16Array }, U16: { size: 2, array: Uint16Array },
  F16: { size: 2, array: Uint16Array }, BF16: { size: 2, array: Uint16Array },
  I32: { size: 4, array: Int32Array }, U32: { size: 4, array: Uint32Array }, F32: { size: 4, array: Float32Array },
  I64: { size: 8, array: BigInt64Array }, U64: { size: 8, array: BigUint64Array }, F64: { size: 8, array: Float64Array },
};

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new SafetensorsError('safetensors I/O here assumes a little-endian host');
  }
}

export function dtypeSize(dtype: Dtype): number {
  return DTYPES[dtype].size;
}

function elements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const isDim = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Writes tensors (and string metadata) to `path` atomically. Everything is validated before the
 * file is opened. Tensors are laid out largest element size first, then by name (the reference
 * writer also puts wider dtypes first), so every tensor is aligned to its element size.
 */
export async function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  assertLittleEndian();
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) checkTensor(name, t);
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null) throw new SafetensorsError('metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`metadata '${k}' must be a string (safetensors metadata is str -> str), got ${typeof v}`);
    }
  }
  entries.sort(([an, a], [bn, b]) => DTYPES[b.dtype].size - DTYPES[a.dtype].size || (an < bn ? -1 : an > bn ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const end = offset + t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new SafetensorsError(`header would be ${padded} bytes, over the ${MAX_HEADER_BYTES} limit`);
  const head = new Uint8Array(8 + padded).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  await writeFileAtomic(path, async (fh) => {
    await writeFully(fh, head, 0);
    let pos = head.length;
    for (const [, t] of entries) {
      await writeFully(fh, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
      pos += t.data.byteLength;
    }
  });
}

function checkTensor(name: string, t: Tensor): void {
  const where = `tensor '${name}'`;
  if (name.length === 0 || name === '__metadata__') throw new SafetensorsError(`invalid tensor name ${JSON.stringify(name)}`);
  if (typeof t !== 'object' || t === null) throw new SafetensorsError(`${where} must be { dtype, shape, data }`);
  if (!Object.hasOwn(DTYPES, t.dtype)) throw new SafetensorsError(`${where} has unknown dtype '${String(t.dtype)}' (known: ${Object.keys(DTYPES).join(', ')})`);
  const info = DTYPES[t.dtype];
  if (!Array.isArray(t.shape) || !t.shape.every(isDim)) throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
  if (!(t.data instanceof info.array)) {
    throw new SafetensorsError(`${where}: dtype ${t.dtype} needs a ${info.array.name}, got ${(t.data as object)?.constructor?.name ?? typeof t.data}`);
  }
  const n = elements(t.shape);
  if (t.data.length !== n) throw new SafetensorsError(`${where}: shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`);
}

/** Reads and validates only the header (no tensor data). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openFile(path);
  try {
    return await readHeader(fh, path);
  } finally {
    await fh.close();
  }
}

/**
 * Reads a safetensors file, validating the header fully before any tensor data is read. With
 * `select`, only the tensors it accepts are read (the header is still validated whole).
 */
export async function readSafetensors(path: string, opts: { select?: (name: string, info: TensorInfo) => boolean } = {}): Promise<SafetensorsFile> {
  assertLittleEndian();
  const fh = await openFile(path);
  try {
    const h = await readHeader(fh, path);
    const tensors: Record<string, Tensor> = Object.create(null);
    for (const [name, info] of Object.entries(h.tensors)) {
      if (opts.select && !opts.select(name, info)) continue;
      const [b, e] = info.dataOffsets;
      const buf = new ArrayBuffer(e - b);
      await readFully(fh, new Uint8Array(buf), h.dataStart + b, path);
      const T = DTYPES[info.dtype];
      tensors[name] = { dtype: info.dtype, shape: info.shape, data: new T.array(buf, 0, (e - b) / T.size) };
    }
    return { metadata: h.metadata, tensors };
  } finally {
    await fh.close();
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw new SafetensorsError(`${path}: cannot open: ${(e as Error).message}`);
  }
}

async function readFully(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  const CHUNK = 1 << 24;
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, Math.min(CHUNK, into.length - done), position + done);
    if (bytesRead === 0) throw new SafetensorsError(`${path}: file ended at byte ${position + done} while reading (truncated?)`);
    done += bytesRead;
  }
}

async function readHeader(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fail = (why: string): never => { throw new SafetensorsError(`${path}: ${why}`); };
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) fail(`file is ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBytes = new Uint8Array(8);
  await readFully(fh, lenBytes, 0, path);
  const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) fail(`header length ${n64} is larger than the ${fileSize - 8} bytes after it (truncated file or not safetensors)`);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} is over the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (n < 2) fail(`header length ${n} is too small for a JSON object`);
  const raw = new Uint8Array(n);
  await readFully(fh, raw, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(`header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('header JSON is not an object');
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = Object.create(null);
  const tensors: Record<string, TensorInfo> = Object.create(null);
  const spans: { name: string; b: number; e: number }[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('__metadata__ must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(`__metadata__.${k} must be a string, got ${typeof s}`);
        metadata[k] = s as string;
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where}: entry must be an object { dtype, shape, data_offsets }`);
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) fail(`${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isDim)) fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isDim) || off[0] > off[1]) {
      fail(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const [b, e] = off as [number, number];
    if (e > dataLen) fail(`${where}: data_offsets [${b}, ${e}] are outside the data section (${dataLen} bytes; file truncated?)`);
    const size = DTYPES[dtype as Dtype].size;
    const want = elements(shape as number[]) * size;
    if (want !== e - b) fail(`${where}: ${dtype} shape [${(shape as number[]).join(', ')}] needs ${want} bytes but data_offsets [${b}, ${e}] span ${e - b}`);
    tensors[name] = { dtype: dtype as Dtype, shape: shape as number[], dataOffsets: [b, e] };
    spans.push({ name, b, e });
  }
  // Tensors must tile the data section exactly: no overlap, no gap, nothing after the last one.
  spans.sort((x, y) => x.b - y.b || x.e - y.e);
  let at = 0, prev = '(start of data)';
  for (const s of spans) {
    if (s.b < at) fail(`tensors ${prev} and '${s.name}' overlap (byte ${s.b} < ${at})`);
    if (s.b > at) fail(`${s.b - at} bytes of gap before tensor '${s.name}' (after ${prev})`);
    at = s.e;
    prev = `'${s.name}'`;
  }
  if (at !== dataLen) fail(`the data section has ${dataLen} bytes but the tensors cover ${at}`);
  return { metadata, tensors, dataStart, fileSize };
}
