// safetensors: byte layout as the format specifies, round trip of every dtype, atomic writes
// (a failed write leaves no partial or temp file and the old file intact, also when the disk
// refuses mid-write), corrupted files refused with errors that name the problem, and a file
// written byte by byte the way safetensors.numpy.save_file writes it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeSafetensors, readSafetensors, readSafetensorsHeader, type Tensor } from '../src/checkpoint/safetensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'hybridps-st-'));
const at = (name: string) => join(dir, name);

/** Builds a file from a header object (or raw header text) and data bytes, as any writer could. */
function rawFile(header: object | string | Uint8Array, data: Uint8Array, opts: { pad?: boolean; lenOverride?: bigint } = {}): Uint8Array {
  let json = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  if (opts.pad ?? true) {
    const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.lenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`expected an error matching ${re}`);
}

const noTempFiles = (d = dir) => assert.equal(readdirSync(d).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');

test('layout: u64 header length, space-padded JSON, packed data largest dtype first', async () => {
  const p = at('layout.safetensors');
  await writeSafetensors(p, {
    'emb.values': { dtype: 'F32', shape: [3, 1], data: Float32Array.of(1.5, -2, 3) },
    'emb.keys': { dtype: 'U64', shape: [3], data: BigUint64Array.of(1n, 2n ** 63n, 7n) },
  }, { step: '10' });
  const b = readFileSync(p);
  const n = Number(b.readBigUInt64LE(0));
  assert.is(n % 8, 0, 'header padded to 8 bytes');
  const text = b.subarray(8, 8 + n).toString('utf8');
  assert.ok(/^\{.*\} *$/.test(text), 'JSON then spaces');
  const h = JSON.parse(text);
  assert.equal(h.__metadata__, { step: '10' });
  assert.equal(h['emb.keys'], { dtype: 'U64', shape: [3], data_offsets: [0, 24] }, 'U64 (8-byte) first');
  assert.equal(h['emb.values'], { dtype: 'F32', shape: [3, 1], data_offsets: [24, 36] });
  assert.is(b.length, 8 + n + 36);
  assert.is(b.readBigUInt64LE(8 + n + 8), 2n ** 63n);
  assert.is(b.readFloatLE(8 + n + 24 + 4), -2);
});

test('round trip of every dtype, empty tensors, metadata, select and header-only reads', async () => {
  const tensors: Record<string, Tensor> = {
    f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, NaN) },
    f64: { dtype: 'F64', shape: [2], data: Float64Array.of(Math.PI, -0) },
    u64: { dtype: 'U64', shape: [2], data: BigUint64Array.of(0n, 2n ** 64n - 1n) },
    i64: { dtype: 'I64', shape: [1], data: BigInt64Array.of(-5n) },
    u32: { dtype: 'U32', shape: [1, 1, 1], data: Uint32Array.of(4e9) },
    i32: { dtype: 'I32', shape: [1], data: Int32Array.of(-7) },
    u16: { dtype: 'U16', shape: [1], data: Uint16Array.of(65535) },
    i16: { dtype: 'I16', shape: [1], data: Int16Array.of(-2) },
    f16: { dtype: 'F16', shape: [2], data: Uint16Array.of(0x3c00, 0xc000) },
    bf16: { dtype: 'BF16', shape: [1], data: Uint16Array.of(0x3f80) },
    u8: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 255) },
    i8: { dtype: 'I8', shape: [1], data: Int8Array.of(-128) },
    bool: { dtype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
    empty: { dtype: 'F32', shape: [0, 64], data: new Float32Array(0) },
    scalar: { dtype: 'F32', shape: [], data: Float32Array.of(42) },
  };
  const p = at('all.safetensors');
  await writeSafetensors(p, tensors, { a: 'b', json: '{"x":1}' });
  const back = await readSafetensors(p);
  assert.equal({ ...back.metadata }, { a: 'b', json: '{"x":1}' });
  assert.equal(Object.keys(back.tensors).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const got = back.tensors[name]!;
    assert.is(got.dtype, t.dtype, name);
    assert.equal(got.shape, t.shape, name);
    assert.is(got.data.constructor, t.data.constructor, name);
    assert.equal(bytesOf(got.data), bytesOf(t.data), `${name} bytes`);
  }
  const some = await readSafetensors(p, { select: (n) => n.startsWith('u') });
  assert.equal(Object.keys(some.tensors).sort(), ['u16', 'u32', 'u64', 'u8']);
  const h = await readSafetensorsHeader(p);
  assert.equal(h.tensors.f32!.shape, [2, 3]);
  assert.is(h.dataStart % 8, 0);
  // No metadata: no __metadata__ entry at all.
  await writeSafetensors(at('nometa.safetensors'), { x: tensors.u8! });
  assert.not.ok(readFileSync(at('nometa.safetensors')).toString('latin1').includes('__metadata__'));
  noTempFiles();
});

test('a bad tensor is refused before any file exists; an old file stays intact', async () => {
  const p = at('atomic.safetensors');
  const good = { a: { dtype: 'F32' as const, shape: [2], data: Float32Array.of(1, 2) } };
  const cases: [Record<string, Tensor>, RegExp, Record<string, string>?][] = [
    [{ ...good, b: { dtype: 'F32', shape: [3], data: Float32Array.of(1, 2) } }, /tensor 'b': shape \[3\] has 3 elements but data has 2/],
    [{ ...good, b: { dtype: 'F32', shape: [2], data: Float64Array.of(1, 2) as never } }, /dtype F32 needs a Float32Array, got Float64Array/],
    [{ ...good, b: { dtype: 'F128' as never, shape: [1], data: Float32Array.of(1) } }, /unknown dtype 'F128'/],
    [{ ...good, b: { dtype: 'F32', shape: [-1], data: Float32Array.of(1) } }, /shape must be an array of non-negative integers/],
    [{ ...good, __metadata__: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } }, /invalid tensor name/],
    [good, /metadata 'n' must be a string/, { n: 5 as never }],
  ];
  for (const [tensors, re, meta] of cases) await rejects(writeSafetensors(p, tensors, meta), re);
  assert.not.ok(existsSync(p), 'nothing written');
  await writeSafetensors(p, good);
  const before = readFileSync(p);
  for (const [tensors, re, meta] of cases) await rejects(writeSafetensors(p, tensors, meta), re);
  assert.equal(readFileSync(p), before, 'old file unchanged');
  // A failure at the rename (the target is a directory) removes the temp file.
  mkdirSync(at('isdir.safetensors'));
  writeFileSync(at('isdir.safetensors/x'), 'x');
  await rejects(writeSafetensors(at('isdir.safetensors'), good), /EISDIR|ENOTEMPTY|EEXIST|directory/i);
  noTempFiles();
});

test('the disk refusing mid-write (file size limit) leaves the old file and no temp file', () => {
  const target = at('midwrite.safetensors');
  const child = join(dir, 'child.mts');
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const mod = pathToFileURL(join(repo, 'src/checkpoint/safetensors.ts')).href;
  writeFileSync(child, `
    import { writeSafetensors } from ${JSON.stringify(mod)};
    const target = ${JSON.stringify(target)};
    await writeSafetensors(target, { x: { dtype: 'F32', shape: [4], data: Float32Array.of(1, 2, 3, 4) } });
    try {
      // 1 MiB of data under a 256 KiB file size limit: the write fails with EFBIG part way.
      await writeSafetensors(target, { big: { dtype: 'F32', shape: [262144], data: new Float32Array(262144).fill(7) } });
      console.log('RESULT wrote');
    } catch (e) {
      console.log('RESULT failed ' + e.code);
    }
  `);
  const r = spawnSync('bash', ['-c', `ulimit -f 256 && exec "${process.execPath}" --import tsx "${child}"`], { encoding: 'utf8', cwd: repo });
  assert.match(r.stdout, /RESULT failed EFBIG/, `child: ${r.stdout} ${r.stderr}`);
  const back = readFileSync(target);
  const n = Number(back.readBigUInt64LE(0));
  assert.equal(JSON.parse(back.subarray(8, 8 + n).toString()).x, { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, 'the old file is still there, whole');
  assert.is(back.length, 8 + n + 16);
  noTempFiles();
});

test('corrupted files give errors that name the problem', async () => {
  const data = bytesOf(Float32Array.of(1, 2, 3, 4));
  const okHeader = { t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
  const good = rawFile(okHeader, data);
  const cases: [string, Uint8Array, RegExp][] = [
    ['tiny', good.subarray(0, 5), /5 bytes, too short for the 8-byte header length/],
    ['truncated-data', good.subarray(0, good.length - 3), /data_offsets \[0, 16\] are outside the data section \(13 bytes; file truncated\?\)/],
    ['truncated-header', good.subarray(0, 20), /header length \d+ is larger than the 12 bytes after it/],
    ['length-lies', rawFile(okHeader, data, { lenOverride: 10_000n }), /header length 10000 is larger than the \d+ bytes after it/],
    ['length-huge', rawFile(okHeader, data, { lenOverride: 2n ** 63n }), /header length 9223372036854775808 is larger/],
    ['not-json', rawFile('{"t": {"dtype": "F32",', data), /header is not valid JSON/],
    ['not-object', rawFile('[1,2,3]', new Uint8Array(0)), /does not start with '\{'/],
    ['bad-utf8', rawFile(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d), new Uint8Array(0)), /header is not valid UTF-8/],
    ['offsets-out', rawFile({ t: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, data), /outside the data section \(16 bytes/],
    ['offsets-reversed', rawFile({ t: { dtype: 'F32', shape: [0], data_offsets: [16, 0] } }, data), /data_offsets must be \[begin, end\] with 0 <= begin <= end/],
    ['shape-mismatch', rawFile({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data), /F32 shape \[3\] needs 12 bytes but data_offsets \[0, 16\] span 16/],
    ['dtype-unknown', rawFile({ t: { dtype: 'Q4', shape: [4], data_offsets: [0, 16] } }, data), /unknown dtype "Q4"/],
    ['overlap', rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data), /tensors 'a' and 'b' overlap/],
    ['gap', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data), /4 bytes of gap before tensor 'b'/],
    ['trailing', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data), /data section has 16 bytes but the tensors cover 8/],
    ['meta-not-string', rawFile({ __metadata__: { a: 1 }, ...okHeader }, data), /__metadata__\.a must be a string/],
    ['negative-shape', rawFile({ t: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data), /shape must be an array of non-negative integers/],
  ];
  for (const [name, bytes, re] of cases) {
    const p = at(`bad-${name}.safetensors`);
    writeFileSync(p, bytes);
    await rejects(readSafetensors(p), re);
    await rejects(readSafetensors(p), new RegExp(`bad-${name}\\.safetensors: `)); // names the file
  }
  writeFileSync(at('good.safetensors'), good);
  assert.equal(Array.from((await readSafetensors(at('good.safetensors'))).tensors.t!.data as Float32Array), [1, 2, 3, 4]);
  await rejects(readSafetensors(at('missing.safetensors')), /missing\.safetensors: cannot open/);
});

test('bytes as safetensors.numpy.save_file writes them load', async () => {
  // save_file({"emb.keys": np.array([3, 1, 2], np.uint64), "emb.values": np.arange(6, dtype=np.float32).reshape(3, 2)}, p,
  //           metadata={"format": "np"}): compact JSON, __metadata__ first, tensors ordered by dtype (wider
  //           first: U64 before F32) then name, header padded with spaces to a multiple of 8.
  const header = '{"__metadata__":{"format":"np"},"emb.keys":{"dtype":"U64","shape":[3],"data_offsets":[0,24]},' +
    '"emb.values":{"dtype":"F32","shape":[3,2],"data_offsets":[24,48]}}';
  const pad = (8 - (header.length % 8)) % 8;
  const head = Buffer.from(header + ' '.repeat(pad), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  const data = Buffer.alloc(48);
  [3n, 1n, 2n].forEach((k, i) => data.writeBigUInt64LE(k, 8 * i));
  for (let i = 0; i < 6; i++) data.writeFloatLE(i, 24 + 4 * i);
  const p = at('numpy.safetensors');
  writeFileSync(p, Buffer.concat([len, head, data]));
  const f = await readSafetensors(p);
  assert.equal({ ...f.metadata }, { format: 'np' });
  assert.equal(Array.from(f.tensors['emb.keys']!.data as BigUint64Array), [3n, 1n, 2n]);
  assert.equal(f.tensors['emb.values']!.shape, [3, 2]);
  assert.equal(Array.from(f.tensors['emb.values']!.data as Float32Array), [0, 1, 2, 3, 4, 5]);
  // And what we write for the same tensors is byte-identical (same layout rules).
  await writeSafetensors(at('ours.safetensors'), {
    'emb.values': { dtype: 'F32', shape: [3, 2], data: Float32Array.of(0, 1, 2, 3, 4, 5) },
    'emb.keys': { dtype: 'U64', shape: [3], data: BigUint64Array.of(3n, 1n, 2n) },
  }, { format: 'np' });
  assert.equal(readFileSync(at('ours.safetensors')), readFileSync(p));
});

test('cleanup', () => { rmSync(dir, { recursive: true, force: true }); });

test.run();
