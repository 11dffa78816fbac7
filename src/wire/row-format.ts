// How row values travel between workers and servers: f32 (exact), f16 (IEEE half: 2 bytes,
// relative error 2^-11, range +-65504) or bf16 (top half of an f32: 2 bytes, relative error
// 2^-8, f32's range). The servers keep f32 rows whichever is chosen; only the wire is narrower.
// One place maps the names (CLI, config, PSClient option), the wire enum and the conversions.
import { RowFormat as WireRowFormat } from './generated/hybridps/wire.ts';
import { f16ToF32, f32ToF16 } from './f16.ts';
import { bf16ToF32, f32ToBf16, roundToBf16InPlace } from './bf16.ts';

export const ROW_FORMATS = ['f32', 'f16', 'bf16'] as const;
export type RowFormat = (typeof ROW_FORMATS)[number];

export const isRowFormat = (s: unknown): s is RowFormat => (ROW_FORMATS as readonly unknown[]).includes(s);

/** `s` as a row format, or an error naming `what` (a flag, a field) and the choices. */
export function parseRowFormat(s: unknown, what = '--wire-rows'): RowFormat {
  if (isRowFormat(s)) return s;
  throw new Error(`${what} ${JSON.stringify(s)}: not a row format; use one of ${ROW_FORMATS.join(', ')} (f16 and bf16 send 2 bytes per value, f32 4)`);
}

/**
 * A format given as a name and/or the older `f16` switch (PSClient options, a config): the name
 * wins, `f16: true` alone means f16; an unknown name, or an f16 switch that contradicts the name,
 * is refused naming `what`.
 */
export function resolveRowFormat(format: unknown, f16: boolean | undefined, what: string): RowFormat {
  const f = format === undefined ? (f16 ? 'f16' : 'f32') : parseRowFormat(format, `${what} format`);
  if (f16 !== undefined && f16 !== (f === 'f16')) throw new Error(`${what} f16: ${f16} contradicts format ${f}; give the format alone`);
  return f;
}

/** Bytes one value takes on the wire. */
export const rowValueBytes = (f: RowFormat): number => (f === 'f32' ? 4 : 2);

const TO_WIRE: Record<RowFormat, WireRowFormat> = { f32: WireRowFormat.F32, f16: WireRowFormat.F16, bf16: WireRowFormat.BF16 };

export const toWireRowFormat = (f: RowFormat): WireRowFormat => TO_WIRE[f];

/**
 * The format a Pull / PullBatch asks for: its `format` field, or an older peer's `f16` flag when
 * that is F32 (the default). undefined for a value this build does not know.
 */
export function fromWireRowFormat(format: number, f16: boolean): RowFormat | undefined {
  switch (format) {
    case WireRowFormat.F32: return f16 ? 'f16' : 'f32';
    case WireRowFormat.F16: return 'f16';
    case WireRowFormat.BF16: return 'bf16';
    default: return undefined;
  }
}

/** Values narrowed to a 2-byte format's bits, into `dst` when given. */
export function narrowValues(values: Float32Array, f: 'f16' | 'bf16', dst?: Uint16Array): Uint16Array {
  return f === 'f16' ? f32ToF16(values, dst as Uint16Array<ArrayBuffer> | undefined) : f32ToBf16(values, dst);
}

/** A 2-byte format's bits widened to f32. */
export function widenValues(bits: Uint16Array, f: 'f16' | 'bf16'): Float32Array {
  return f === 'f16' ? f16ToF32(bits) : bf16ToF32(bits);
}

/** Rounds `a` in place to what format `f` carries (the value a receiver decodes); f32: unchanged. */
export function roundToWire(a: Float32Array, f: RowFormat): Float32Array {
  if (f === 'bf16') return roundToBf16InPlace(a);
  if (f === 'f16') return f16ToF32(f32ToF16(a), a as Float32Array<ArrayBuffer>);
  return a;
}
