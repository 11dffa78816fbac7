// One table shard in this process, no network: 4096 random rows of a 1M x 64 table (200k with
// --quick), the shape of `bench ps`. Rows are interleaved round by round so that old and new
// run at the same machine load:
//  - apply: each built-in optimizer's WASM SIMD kernel (the servers' path) against its JS
//    reference update per row (`scalarUpdates`, float32 rounding, bit-identical results) and, for
//    SGD and AdaGrad, the float64 JS loop the servers ran before (registered here as a custom
//    optimizer, a copy of the old code);
//  - pull: the rows gathered into a reply frame as the server does (encode() of a pullReply with
//    a writer, into a reused FlatBuffers builder), with the per-row copy of today against the old
//    `set(subarray())` per row, and the garbage collections each causes (a PerformanceObserver);
//  - pull then push of the same rows (the server's order in `bench ps`): the WASM gather and the
//    SIMD kernel with and without the WASM touch of each block of rows first (simd-rows.ts), and
//    without the table's memo of recent key lists (recent-slots.ts), 16 rounds of each in turn.
// 64 key sets of 4096 rows (128 MiB of AdaGrad rows, beyond this machine's 32 MiB L3) are used in
// turn, so rows come from memory as in a server's large table, not from the cache.
import { gcObserver } from './gc-observer.ts';
import * as flatbuffers from 'flatbuffers';
import { TableStore } from '../src/server/table-store.ts';
import { registerOptimizer, type OptimizerDef } from '../src/server/optimizers.ts';
import { encode } from '../src/wire/codec.ts';
import { pushProblem } from '../src/server/request-checks.ts';
import { setTouchFirst } from '../src/server/simd-rows.ts';
import { printTable } from './table.ts';

// The float64 loops of SGD and AdaGrad before the SIMD kernels (src/server/optimizers.ts at 576a54f).
const OLD: OptimizerDef[] = [
  {
    name: 'sgd_f64_old', slotCount: 0, defaults: { lr: 0.01, weight_decay: 0 },
    update(w, wOff, g, gOff, dim, _s, _so, _t, h) { const lr = h.lr!; for (let j = 0; j < dim; j++) w[wOff + j] -= lr * g[gOff + j]!; },
  },
  {
    name: 'adagrad_f64_old', slotCount: 1, defaults: { lr: 0.01, eps: 1e-10, initial_accumulator: 0 },
    update(w, wOff, g, gOff, dim, slots, slotOff, _t, h) {
      const lr = h.lr!, eps = h.eps!, acc = slots[0]!;
      for (let j = 0; j < dim; j++) {
        const gj = g[gOff + j]!, a = acc[slotOff + j]! + gj * gj;
        acc[slotOff + j] = a;
        w[wOff + j] -= (lr * gj) / (Math.sqrt(a) + eps);
      }
    },
  },
];

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

const tick = () => new Promise((r) => setImmediate(r));
const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return +s[Math.floor(s.length / 2)]!.toFixed(3); };

/** The old pull loop: one subarray (a new view object) per row, then set(). */
function oldPull(store: TableStore, keys: BigUint64Array, out: Float32Array): void {
  const s = store as unknown as { values: Float32Array[]; slotsOf(k: BigUint64Array): Int32Array; dim: number; stride: number };
  const slots = s.slotsOf(keys), d = s.dim;
  for (let i = 0; i < keys.length; i++) {
    const r = slots[i]!, at = (r & 32767) * s.stride;
    out.set(s.values[r >>> 15]!.subarray(at, at + d), i * d);
  }
}

export async function runStoreBench(args: { json: boolean; quick?: boolean }): Promise<object> {
  const log = (l: string) => (args.json ? process.stderr : process.stdout).write(l + '\n');
  const rows = args.quick ? 200_000 : 1_000_000, dim = 64, nkeys = 4096, rounds = args.quick ? 40 : 200, warmup = 20;
  for (const o of OLD) registerOptimizer(o);
  const rnd = xorshift(12345);
  const keySets = Array.from({ length: 64 }, () => {
    const set = new Set<bigint>();
    while (set.size < nkeys) set.add(BigInt(rnd() % rows));
    return BigUint64Array.from(set);
  });
  const grads = Float32Array.from({ length: nkeys * dim }, () => (rnd() / 2 ** 32 - 0.5) * 0.1);
  const fill = (store: TableStore) => { for (let k = 0; k < rows; k += 65536) store.pull(BigUint64Array.from({ length: Math.min(65536, rows - k) }, (_, i) => BigInt(k + i))); };
  const table = (optimizer: string, scalarUpdates = false) => {
    const s = new TableStore({ id: 1, name: 't', dim, init: 'uniform', initScale: 0.01, seed: 7n, optimizer, hyper: {}, expectedRows: rows, scalarUpdates });
    fill(s);
    return s;
  };

  const applyRows: Record<string, number | string>[] = [];
  // Built one group at a time (1M AdaGrad rows are 0.5 GB a table).
  const groups: [string, () => [string, TableStore][]][] = [
    ['sgd', () => [['simd', table('sgd')], ['js f32', table('sgd', true)], ['js f64 (old)', table('sgd_f64_old')]]],
    ['adagrad', () => [['simd', table('adagrad')], ['js f32', table('adagrad', true)], ['js f64 (old)', table('adagrad_f64_old')]]],
    ['adam', () => [['simd', table('adam')], ['js f32', table('adam', true)]]],
  ];
  for (const [opt, make] of groups) {
    const variants = make();
    log(`[bench store] apply, ${opt}: ${variants.map(([n]) => n).join(', ')} interleaved, ${rounds} rounds`);
    const times = variants.map(() => [] as number[]);
    for (let r = 0; r < warmup + rounds; r++) {
      const keys = keySets[r % keySets.length]!;
      variants.forEach(([, s], v) => {
        const t0 = performance.now();
        s.apply(keys, grads);
        if (r >= warmup) times[v]!.push(performance.now() - t0);
      });
      if (r % 10 === 0) await tick();
    }
    const ms = times.map(median);
    variants.forEach(([name], v) => applyRows.push({ optimizer: opt, update: name, 'apply ms': ms[v]!, 'vs simd': +(ms[v]! / ms[0]!).toFixed(2) }));
    variants.length = 0; // free the tables before the next group
  }
  printTable(`apply: ${nkeys} random rows of ${rows} x ${dim} (median of ${rounds})`, applyRows);

  // Pulls: into a reply frame (the server's path), new copy vs the old subarray per row.
  const store = table('adagrad');
  const builder = new flatbuffers.Builder(nkeys * dim * 4 + 1024);
  const reply = (pull: (keys: BigUint64Array, out: Float32Array) => void, keys: BigUint64Array) => encode({
    requestId: 1, reply: true, sender: 'server-0', epoch: 1,
    body: { type: 'pullReply', table: 1, dim, values: new Float32Array(0), writer: { length: keys.length * dim, write: (dst) => pull(keys, dst) } },
  }, builder);
  const variants: [string, (k: BigUint64Array, o: Float32Array) => void][] = [
    ['store.pull (new)', (k, o) => { store.pull(k, o); }],
    ['set(subarray) (old)', (k, o) => oldPull(store, k, o)],
  ];
  const pullRows: Record<string, number | string>[] = [];
  for (const [name, pull] of variants) {
    for (let r = 0; r < warmup; r++) reply(pull, keySets[r % keySets.length]!);
    await tick();
    const gc = gcObserver(), times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      reply(pull, keySets[r % keySets.length]!);
      times.push(performance.now() - t0);
      await tick(); // gc entries arrive between turns
    }
    await tick();
    const g = gc.stop();
    pullRows.push({ pull: name, 'reply ms': median(times), 'minor gc': g.minor, 'major gc': g.major, 'gc ms': g.ms, 'per pulls': rounds });
  }
  printTable(`pull into a reused reply frame: ${nkeys} random rows`, pullRows);

  // Pull then push of the same rows, as a worker does; the push's keys arrive in a frame of their own (a copy).
  const internals = store as unknown as { recent: object };
  const memo = internals.recent, noMemo = { find: () => null, remember: () => {} };
  const paths: [string, boolean, object][] = [['no touch, memo (before)', false, memo], ['touch, no memo', true, noMemo], ['touch + memo (now)', true, memo]];
  const out = new Float32Array(nkeys * dim), pt = paths.map(() => ({ pull: [] as number[], push: [] as number[] }));
  for (let r = 0; r < 16 * paths.length * Math.ceil((warmup + rounds) / 16); r++) {
    const v = Math.floor(r / 16) % paths.length, keys = keySets[r % keySets.length]!;
    setTouchFirst(paths[v]![1]);
    internals.recent = paths[v]![2];
    let t0 = performance.now();
    store.pull(keys, out);
    const pullMs = performance.now() - t0;
    const pushed = keys.slice();
    t0 = performance.now();
    pushProblem(dim, pushed, grads);
    store.apply(pushed, grads);
    if (r >= 16 * paths.length) { pt[v]!.pull.push(pullMs); pt[v]!.push.push(performance.now() - t0); }
    if (r % 10 === 0) await tick();
  }
  internals.recent = memo;
  setTouchFirst(true);
  const before = { pull: median(pt[0]!.pull), push: median(pt[0]!.push) };
  const roundRows = paths.map(([name], v) => ({
    path: name, 'pull ms': median(pt[v]!.pull), 'push ms': median(pt[v]!.push), 'before / this': +((before.pull + before.push) / (median(pt[v]!.pull) + median(pt[v]!.push))).toFixed(2),
  }));
  printTable(`pull then push of the same ${nkeys} random rows, adagrad (median of ${pt[0]!.pull.length} each)`, roundRows);
  return { rows, dim, keys: nkeys, rounds, apply: applyRows, pull: pullRows, round: roundRows };
}
