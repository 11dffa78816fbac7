// The servers' share of the BSP `clock` phase, in this process: ConsistencyGate.clock draining a
// clock's summed pushes and applying them, at one server's share of `bench step`'s full size
// (2 servers: 26 AdaGrad tables x 50k rows, ~430 rows a table a clock). With `--old DIR` (a
// checkout of an earlier commit, with its node_modules) the same gate and store of that tree run
// beside this one's, clock by clock interleaved, so old and new see the same machine load.
//   node --import tsx bench/clock-apply.ts [--old DIR] [--clocks N]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const TABLES = 26, ROWS = 50_000, DIM = 64, PER_TABLE = 430, WARMUP = 10;

interface Version { name: string; gate: { take(t: unknown, c: number, k: BigUint64Array, g: Float32Array): void; clock(w: number, c: number): number }; tables: unknown[] }

async function load(name: string, root: string): Promise<Version> {
  const at = (f: string) => pathToFileURL(resolve(root, f)).href;
  const { ConsistencyGate } = await import(at('src/server/consistency.ts'));
  const { TableStore } = await import(at('src/server/table-store.ts'));
  const tables = Array.from({ length: TABLES }, (_, i) => {
    const store = new TableStore({ id: i, name: `t${i}`, dim: DIM, init: 'uniform', initScale: 0.01, seed: 7n, optimizer: 'adagrad', hyper: {}, expectedRows: ROWS });
    for (let k = 0; k < ROWS; k += 8192) store.pull(BigUint64Array.from({ length: Math.min(8192, ROWS - k) }, (_, j) => BigInt(k + j)));
    // A TableState as tables.ts declares it (BSP is consistency 0 on the wire).
    return { spec: { id: i, name: `t${i}`, dim: DIM, consistency: 0, staleness: 0 }, store, pending: new Map(), appliedClock: -1 };
  });
  const gate = new ConsistencyGate({ values: () => tables.values() }, { applyMs: 0, clocks: 0 });
  gate.setLiveWorkers([0]);
  return { name, gate, tables };
}

const argv = process.argv.slice(2);
const opt = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined; };
const clocks = Number(opt('--clocks') ?? 60);
const old = opt('--old');
const versions = [...(old ? [await load(`old (${old})`, old)] : []), await load('this tree', resolve(import.meta.dirname, '..'))];

let x = 12345;
const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
const keySets = Array.from({ length: 8 }, () => Array.from({ length: TABLES }, () => {
  const s = new Set<bigint>();
  while (s.size < PER_TABLE) s.add(BigInt(rnd() % ROWS));
  return BigUint64Array.from(s);
}));
const grads = Float32Array.from({ length: PER_TABLE * DIM }, () => (rnd() / 2 ** 32 - 0.5) * 0.1);
const times = versions.map(() => [] as number[]);
for (let c = 0; c < WARMUP + clocks; c++) {
  versions.forEach((v, i) => {
    v.tables.forEach((t, j) => v.gate.take(t, c, keySets[c % 8]![j]!, grads));
    const t0 = performance.now();
    v.gate.clock(0, c + 1);
    if (c >= WARMUP) times[i]!.push(performance.now() - t0);
  });
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
for (const [i, v] of versions.entries()) console.log(`${v.name}: clock ${median(times[i]!).toFixed(2)} ms median over ${clocks} clocks`);
if (versions.length > 1) console.log(`old / this: ${(median(times[0]!) / median(times[1]!)).toFixed(2)}x`);
