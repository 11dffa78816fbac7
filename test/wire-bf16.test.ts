// bf16 on the wire (src/wire/bf16.ts, row-format.ts): f32 -> bf16 against a float64 reference of
// IEEE round-to-nearest-even on random bit patterns (every exponent, subnormals, NaN, +-Inf) and
// on values at and next to rounding ties; bf16 -> f32 exact for every pattern; the array forms on
// views at an offset; frames with bf16 rows round-trip and are smaller; older peers' f16 flag is
// written and read; a frame with two value vectors, and format names, flags and configurations
// that name no known format, are refused naming the cause.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bf16BitsToF32, bf16ToF32, f32ToBf16, f32ToBf16Bits, roundToBf16InPlace, BF16_RELATIVE_ERROR } from '../src/wire/bf16.ts';
import { parseRowFormat, resolveRowFormat, roundToWire } from '../src/wire/row-format.ts';
import * as flatbuffers from 'flatbuffers';
import { decode, encode, WireError } from '../src/wire/codec.ts';
import * as W from '../src/wire/generated/hybridps/wire.ts';
import { validateConfig } from '../src/train/config.ts';
import { trainJobFromFlags } from '../src/cli/train-flags.ts';
import { tinyConfig } from './helpers/train.ts';
import { randomFloats } from './helpers/random.ts';

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
const fromBits = (b: number): number => { u32[0] = b >>> 0; return f32[0]!; };
const bitsOf = (x: number): number => { f32[0] = x; return u32[0]!; };

/**
 * The nearest bf16 of the f32 `x` by IEEE rules, in float64 arithmetic (independent of the
 * bit trick under test): 8 significant bits at x's binade (at least 2^-126, where subnormals
 * keep the spacing 2^-133), ties to the even multiple, and from 2^128 on (the next binade's
 * first value, which a tie at the largest bf16 rounds to) infinity.
 */
function referenceBf16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.max(Math.floor(Math.log2(a)), -126);
  while (e > -126 && 2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - 7), q = a / ulp; // exact: a has at most 24 significant bits
  let r = Math.floor(q);
  const rest = q - r;
  if (rest > 0.5 || (rest === 0.5 && r % 2 === 1)) r++;
  const y = r * ulp;
  return Math.sign(x) * (y >= 2 ** 128 ? Infinity : y);
}

let seed = 12345;
const rnd32 = (): number => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>>= 0); };

/** Random f32 bit patterns, and patterns whose low half sits at or next to a rounding tie. */
function testPatterns(): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i < 200_000; i++) out.push(rnd32());
  for (let i = 0; i < 50_000; i++) {
    const hi = rnd32() & 0xffff0000;
    for (const lo of [0x8000, 0x7fff, 0x8001, 0x0000, 0xffff, 0x0001]) out.push((hi | lo) >>> 0);
  }
  // Subnormals (exponent 0) at ties, the largest finite values, zeros, infinities, NaNs.
  for (let i = 0; i < 10_000; i++) out.push(((rnd32() & 0x807f0000) | 0x8000) >>> 0, (rnd32() & 0x807fffff) >>> 0);
  out.push(0, 0x80000000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7e8000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x7f810000, 0x00008000, 0x00018000, 0x00000001);
  return Uint32Array.from(out);
}

test('f32 -> bf16 is IEEE round-to-nearest-even (float64 reference): ties, subnormals, overflow, NaN, +-Inf', () => {
  const bits = testPatterns();
  const src = new Float32Array(bits.buffer);
  const wide = bf16ToF32(f32ToBf16(src));
  let nans = 0, ties = 0, subnormals = 0, overflows = 0;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!, x = src[i]!;
    const scalar = f32ToBf16Bits(x);
    if (Number.isNaN(x)) {
      nans++;
      assert.ok(Number.isNaN(wide[i]!), `NaN ${b.toString(16)} stays NaN (got ${wide[i]})`);
      assert.is(scalar >>> 15, b >>> 31, `NaN ${b.toString(16)} keeps its sign`);
      continue;
    }
    const want = referenceBf16(x);
    if (!Object.is(wide[i]!, want)) assert.unreachable(`${b.toString(16)} (${x}): got ${wide[i]} (${bitsOf(wide[i]!).toString(16)}), want ${want}`);
    assert.is(scalar, bitsOf(want) >>> 16, `scalar form of ${b.toString(16)}`);
    if ((b & 0xffff) === 0x8000) ties++;
    if ((b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0) subnormals++;
    if (Math.abs(x) !== Infinity && Math.abs(want) === Infinity) overflows++;
  }
  assert.ok(nans > 100 && ties > 40_000 && subnormals > 10_000 && overflows >= 2, `covered: ${nans} NaNs, ${ties} ties, ${subnormals} subnormals, ${overflows} overflows`);
  // The named edges.
  assert.is(f32ToBf16Bits(fromBits(0x3f808000)), 0x3f80, 'a tie goes to the even neighbour (down)');
  assert.is(f32ToBf16Bits(fromBits(0x3f818000)), 0x3f82, 'a tie goes to the even neighbour (up)');
  assert.is(f32ToBf16Bits(fromBits(0x7f7f8000)), 0x7f80, 'the tie above the largest bf16 becomes +Inf');
  assert.is(f32ToBf16Bits(fromBits(0x7f7f7fff)), 0x7f7f, 'just below it stays finite');
  assert.is(f32ToBf16Bits(fromBits(0x7f800001)) & 0x7fff, 0x7fc0, 'a NaN whose payload is only in the low half stays NaN (not Inf)');
  assert.is(f32ToBf16Bits(-Infinity), 0xff80);
  assert.is(f32ToBf16Bits(-0), 0x8000, 'negative zero keeps its sign');
});

test('bf16 -> f32 is exact for every one of the 65536 patterns; normal values within 2^-8', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
  const wide = bf16ToF32(all);
  const back = f32ToBf16(wide), wideBits = new Uint32Array(wide.buffer); // raw bits: reading a NaN as a number may quiet it
  for (let h = 0; h < 65536; h++) {
    assert.is(wideBits[h], (h << 16) >>> 0, `pattern ${h.toString(16)} widens to its own bits`);
    const nan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    if (nan) { assert.ok(Number.isNaN(bf16BitsToF32(h)) && (back[h]! & 0x7f80) === 0x7f80 && (back[h]! & 0x7f) !== 0, `NaN ${h.toString(16)}`); continue; }
    assert.is(bitsOf(bf16BitsToF32(h)), (h << 16) >>> 0);
    assert.is(back[h], h, `pattern ${h.toString(16)} survives a round trip`);
  }
  const x = randomFloats(100_000, 3).map((v, i) => v * 10 ** ((i % 60) - 30));
  const y = bf16ToF32(f32ToBf16(x));
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= BF16_RELATIVE_ERROR * Math.abs(x[i]!), `${x[i]} -> ${y[i]}`);
});

test('the array forms work on views at an offset, refuse a short destination, and round in place as the wire does', () => {
  const x = randomFloats(1001, 8);
  const buf = new Float32Array(1005);
  buf.set(x, 3);
  const view = buf.subarray(3, 1004); // byteOffset 12
  const out = new Uint16Array(1010).subarray(5, 1006); // byteOffset 10
  f32ToBf16(view, out);
  for (let i = 0; i < x.length; i++) assert.is(out[i], f32ToBf16Bits(x[i]!), `value ${i}`);
  const wide = new Float32Array(1003).subarray(1, 1002);
  bf16ToF32(out, wide);
  assert.equal(Array.from(roundToBf16InPlace(view.slice())), Array.from(wide));
  assert.equal(Array.from(roundToWire(view.slice(), 'bf16')), Array.from(wide));
  assert.equal(Array.from(buf.subarray(3, 1004)), Array.from(x), 'the source is left as it was');
  assert.throws(() => f32ToBf16(x, new Uint16Array(10)), /destination holds 10 values, the source 1001/);
  assert.throws(() => bf16ToF32(out, new Float32Array(3)), /destination holds 3 values/);
});

test('bf16 rows round-trip through a frame at 2 bytes a value (pull reply, push)', () => {
  const vals = randomFloats(4096, 11).map((v) => v * 1e-3);
  const keys = BigUint64Array.from({ length: 512 }, (_, i) => BigInt(i));
  const size = (format: 'f32' | 'f16' | 'bf16') => {
    const frame = encode({ requestId: 1, reply: true, sender: 's', epoch: 1, body: { type: 'pullReply', table: 1, dim: 8, values: vals, format } });
    const back = decode(frame).body;
    assert.ok(back.type === 'pullReply' && back.format === format);
    if (back.type === 'pullReply') assert.equal(Array.from(back.values), Array.from(roundToWire(vals.slice(), format)), `${format} values as the wire rounds them`);
    return frame.length;
  };
  const [b32, b16, bb] = [size('f32'), size('f16'), size('bf16')];
  // 2 bytes a value, give or take a vtable slot and padding.
  assert.ok(Math.abs(b32 - bb - 4096 * 2) <= 16, `bf16 saves 2 bytes a value (${b32} -> ${bb})`);
  assert.ok(Math.abs(bb - b16) <= 8, `bf16 and fp16 frames are the same size but for a vtable slot (${bb}, ${b16})`);
  // A push's writer (the gradients written into the frame) narrows too.
  const push = decode(encode({ requestId: 2, reply: false, sender: 'w', epoch: 1, body: { type: 'pushBatch', parts: [{ table: 1, keys, seq: 1, offset: 0 }], values: new Float32Array(0), writer: { length: vals.length, write: (d) => d.set(vals) }, worker: 0, clock: 0, format: 'bf16' } })).body;
  assert.ok(push.type === 'pushBatch' && push.format === 'bf16');
  if (push.type === 'pushBatch') assert.equal(Array.from(push.values), Array.from(roundToWire(vals.slice(), 'bf16')));
});

/** A frame built with the generated code, as a peer of another version might write it. */
function rawFrame(body: (b: flatbuffers.Builder) => [W.Body, number], reply = false): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const [type, off] = body(b);
  const sender = b.createString('peer');
  W.Envelope.finishEnvelopeBuffer(b, W.Envelope.createEnvelope(b, 5n, reply, sender, 1n, type, off));
  return b.asUint8Array();
}

test('older peers: a pull flagged only f16 asks for f16; an f16 pull still sets the flag, a bf16 one does not; two value vectors are refused', () => {
  const asked = (f16: boolean, format: W.RowFormat) => {
    const body = decode(rawFrame((b) => [W.Body.Pull, W.Pull.createPull(b, 1, W.Pull.createKeysVector(b, [1n]), -1n, 0, f16, format)])).body;
    return body.type === 'pull' ? body.format : undefined;
  };
  assert.is(asked(true, W.RowFormat.F32), 'f16', 'an older worker\'s f16 flag');
  assert.is(asked(false, W.RowFormat.F32), 'f32');
  assert.is(asked(false, W.RowFormat.BF16), 'bf16');
  assert.is(asked(true, W.RowFormat.BF16), 'bf16', 'the format wins over the flag');
  const flag = (format: 'f16' | 'bf16') => {
    const frame = encode({ requestId: 1, reply: false, sender: 'w', epoch: 1, body: { type: 'pull', table: 1, keys: BigUint64Array.of(1n), clock: -1, worker: 0, format } });
    return (W.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(frame)).body(new W.Pull()) as W.Pull).f16();
  };
  assert.is(flag('f16'), true, 'an older server reads the f16 flag');
  assert.is(flag('bf16'), false, 'an older server answers a bf16 pull in f32, which decodes');
  const both = rawFrame((b) => {
    const v = W.PullReply.createValuesVector(b, [1, 2]), vb = W.PullReply.createValuesBf16Vector(b, [0x3f80, 0x4000]);
    return [W.Body.PullReply, W.PullReply.createPullReply(b, 1, 2, v, 0, -1n, vb)];
  }, true);
  assert.throws(() => decode(both), (e: unknown) => e instanceof WireError && /row values in more than one format \(f32 2, f16 0, bf16 2 values\)/.test((e as Error).message));
  const onlyBf16 = decode(rawFrame((b) => [W.Body.PullReply, W.PullReply.createPullReply(b, 1, 2, 0, 0, -1n, W.PullReply.createValuesBf16Vector(b, [0x3f80, 0xc040]))], true)).body;
  assert.ok(onlyBf16.type === 'pullReply' && onlyBf16.format === 'bf16');
  if (onlyBf16.type === 'pullReply') assert.equal(Array.from(onlyBf16.values), [1, -3]);
});

test('unknown formats are refused naming the choices: names, the CLI flag, PSClient options, a configuration', async () => {
  for (const f of ['f32', 'f16', 'bf16']) assert.is(parseRowFormat(f), f);
  assert.throws(() => parseRowFormat('fp8'), /--wire-rows "fp8": not a row format; use one of f32, f16, bf16/);
  assert.throws(() => parseRowFormat('BF16'), /use one of f32, f16, bf16/);
  assert.is(resolveRowFormat(undefined, true, 'x'), 'f16', 'the older f16 switch alone');
  assert.is(resolveRowFormat(undefined, undefined, 'x'), 'f32');
  assert.throws(() => resolveRowFormat('bf16', true, 'PSClient option'), /PSClient option f16: true contradicts format bf16/);
  assert.throws(() => resolveRowFormat('int8', undefined, 'PSClient option'), /PSClient option format "int8": not a row format/);
  const flags = (f: Record<string, unknown>) => trainJobFromFlags({ data: undefined, ...f });
  assert.is((await flags({ wireRows: 'bf16' })).config.wireRows, 'bf16');
  assert.is((await flags({ f16: true })).config.wireRows, 'f16', '--f16 is --wire-rows f16');
  assert.is((await flags({ f16: true, wireRows: 'f16' })).config.wireRows, 'f16');
  assert.is((await flags({})).config.wireRows, 'f32');
  await flags({ wireRows: 'bf8' }).then(() => assert.unreachable('bf8 accepted'), (e: Error) => assert.match(e.message, /--wire-rows "bf8": not a row format; use one of f32, f16, bf16/));
  await flags({ f16: true, wireRows: 'bf16' }).then(() => assert.unreachable('contradiction accepted'), (e: Error) => assert.match(e.message, /--f16 means --wire-rows f16, but --wire-rows bf16 was given too/));
  const cfg = tinyConfig('/data.tsv');
  validateConfig(cfg);
  validateConfig({ ...cfg, wireRows: 'bf16' });
  assert.throws(() => validateConfig({ ...cfg, wireRows: 'half' as never }), /--wire-rows "half": one of f32, f16, bf16/);
  const { wireRows: _, ...older } = cfg;
  assert.throws(() => validateConfig({ ...older, f16: true } as never), /--wire-rows undefined: one of f32, f16, bf16 \(a configuration written before --wire-rows says "f16"/);
});

test.run();
