// Thousands of random and mutated frames (truncated, bit-flipped, lengths lied about, wrong
// union types) against a real server and the scheduler: no crash, no hang, an answer for every
// request, and the table unchanged by every rejected frame.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, table, SECRET } from './helpers/cluster.ts';
import { dial } from '../src/transport/index.ts';
import { encode, decode, Consistency, Role, type Body, type Envelope } from '../src/wire/codec.ts';
import type { Connection } from '../src/transport/index.ts';

// Damaged epochs make requests wait for a view that never comes; keep that wait short here.
const c = await startCluster({ servers: 1, viewWaitMs: 50 });
const good = await c.client('good');
await good.declareTables([table({ id: 1, dim: 4, init: 'uniform', initScale: 1, optimizer: 'sgd', hyper: { lr: 0.5 }, consistency: Consistency.ASP })]);
const keys = BigUint64Array.from({ length: 16 }, (_, i) => BigInt(i));

let seed = 2024;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;

const corpus: Body[] = [
  { type: 'pull', table: 1, keys, clock: -1, worker: 0 },
  { type: 'push', table: 1, keys: keys.slice(0, 4), values: new Float32Array(16).fill(0.25), worker: 0, clock: 0, seq: 1 },
  { type: 'push', table: 1, keys: keys.slice(4, 8), values: new Float32Array(16).fill(0.5), worker: 0, clock: 0, seq: 2, format: 'f16' },
  { type: 'clock', worker: 0, clock: 1 },
  { type: 'statsRequest' },
  { type: 'handoffRequest', table: 3, offset: 0, limit: 100 },
  { type: 'copyPending', table: 3, clock: 1, keys: BigUint64Array.of(1n, 2n), sums: Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8), applied: [{ sender: 'w0', seq: 3, keys: BigUint64Array.of(1n) }] },
  { type: 'heartbeat', nodeId: 'x', clock: 3 },
  { type: 'declareTables', tables: [], workers: 1 },
  { type: 'copyRows', table: 1, keys: keys.slice(0, 2), values: new Float32Array(8), slots: new Float32Array(0), slotCount: 0, steps: new Uint32Array(2) },
];

function mutate(frame: Uint8Array, i: number): Uint8Array {
  const m = frame.slice();
  const dv = new DataView(m.buffer);
  switch (i % 5) {
    case 0: return m.subarray(0, Math.floor(rnd() * m.length));
    case 1: for (let k = 0; k < 1 + (i % 4); k++) m[Math.floor(rnd() * m.length)] ^= 1 << Math.floor(rnd() * 8); return m;
    case 2: { // a length or offset that lies
      const at = Math.floor(rnd() * (m.length / 4)) * 4;
      dv.setUint32(at, pick([0, 1, 0xffffffff, 0x7fffffff, m.length, m.length * 4, Math.floor(rnd() * 2 ** 32)]), true);
      return m;
    }
    case 3: { // wrong union type: rewrite the body-type byte wherever a plausible one sits
      for (let k = 8; k < Math.min(m.length, 64); k++) if (m[k]! >= 1 && m[k]! <= 26 && rnd() < 0.2) m[k] = 1 + Math.floor(rnd() * 30);
      return m;
    }
    default: return Uint8Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256));
  }
}

/** Sends raw frames on an authenticated link; resolves with the next frame that answers. */
function rawLink(conn: Connection) {
  const waiting: ((e: Envelope | null) => void)[] = [];
  conn.ws.removeAllListeners('message');
  conn.ws.on('message', (d: Buffer) => { const w = waiting.shift(); w?.(decode(d)); });
  return (frame: Uint8Array, expectAnswer: boolean) => new Promise<Envelope | null>((resolve) => {
    const t = setTimeout(() => { waiting.splice(waiting.indexOf(done), 1); resolve(null); }, expectAnswer ? 8000 : 60);
    const done = (e: Envelope | null) => { clearTimeout(t); resolve(e); };
    waiting.push(done);
    conn.ws.send(frame);
  });
}

async function fuzz(url: string, frames: number, role: Role, check?: (rejected: boolean) => Promise<void>) {
  const { conn } = await dial(url, { nodeId: 'fuzzer', secret: SECRET, role, epoch: () => good.view.epoch });
  const send = rawLink(conn);
  let answered = 0, errors = 0;
  for (let i = 0; i < frames; i++) {
    const body = pick(corpus);
    const frame = mutate(encode({ requestId: 1000 + i, reply: false, sender: 'fuzzer', epoch: good.view.epoch, body }), i);
    let parsed: Envelope | null = null;
    try { parsed = decode(frame); } catch { /* the server must answer with Malformed */ }
    const expectAnswer = !parsed || (!parsed.reply && parsed.requestId !== 0);
    const reply = await send(frame, expectAnswer);
    if (expectAnswer) {
      assert.ok(reply, `frame ${i} (${parsed?.body.type ?? 'malformed'}) got no answer`);
      answered++;
      if (reply!.body.type === 'error') {
        errors++;
        assert.ok(reply!.body.message.length > 0, 'errors name their cause');
        await check?.(true);
      } else await check?.(false);
    }
    assert.ok(conn.isOpen, `link closed after frame ${i}`);
  }
  await conn.close();
  return { answered, errors };
}

test('server: 3000 damaged frames, an answer for each, table unchanged by every rejection', async () => {
  let snapshot = await good.pull(1, keys);
  const r = await fuzz(c.servers[0]!.url, 3000, Role.Worker, async (rejected) => {
    const now = await good.pull(1, keys);
    if (rejected) assert.equal(Array.from(now), Array.from(snapshot), 'a rejected frame changed the table');
    snapshot = now;
  });
  assert.ok(r.errors > 1500, `errors ${r.errors} of ${r.answered}`);
  // Still serving normally.
  await good.push(1, keys.slice(0, 1), new Float32Array(4).fill(1));
});

test('scheduler: 3000 damaged frames, still serving, membership unchanged', async () => {
  const before = c.scheduler.view().members.map((m) => m.nodeId).sort();
  const r = await fuzz(c.scheduler.url, 3000, Role.Client);
  assert.ok(r.errors > 1500, `errors ${r.errors} of ${r.answered}`);
  const after = c.scheduler.view().members.map((m) => m.nodeId).filter((id) => id !== 'fuzzer').sort();
  assert.equal(after, before.filter((id) => id !== 'fuzzer'));
});

test('unauthenticated random first frames are all refused', async () => {
  const { default: WebSocket } = await import('ws');
  for (let i = 0; i < 50; i++) {
    const ws = new WebSocket(c.servers[0]!.url, { perMessageDeflate: false });
    await new Promise((r) => ws.once('open', r));
    ws.send(mutate(encode({ requestId: 1, reply: false, sender: 'x', epoch: 1, body: pick(corpus) }), i));
    const code = await new Promise<number>((r) => ws.once('close', (k) => r(k)));
    assert.is(code, 4001);
  }
});

test.after(async () => { await c.close(); });
test.run();
