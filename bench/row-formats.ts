// `npm run bench -- rowformats`: what narrowing row values costs at each end of the wire, per
// format (src/wire/row-format.ts): f32 -> f16 / bf16 and back over 2^20 values, best of 15 rounds
// after a warm-up, in one process, so the ratios between formats hold on a loaded machine. Also
// the scalar bf16 form in a loop, the yardstick for the Uint32-view array form.
import { f32ToBf16, bf16ToF32, f32ToBf16Bits } from '../src/wire/bf16.ts';
import { f32ToF16, f16ToF32 } from '../src/wire/f16.ts';
import { randomFloats } from '../test/helpers/random.ts';

export interface RowFormatsResult { values: number; rounds: number; bestMs: Record<string, number>; mValuesPerSec: Record<string, number> }

export async function runRowFormatsBench(o: { json?: boolean; quick?: boolean } = {}): Promise<RowFormatsResult> {
  const n = o.quick ? 1 << 16 : 1 << 20, rounds = o.quick ? 3 : 15;
  const x = randomFloats(n, 17).map((v) => v * 0.01); // gradient-sized values
  const bits = new Uint16Array(n), out = new Float32Array(n);
  const cases: [string, () => void][] = [
    ['f32 -> bf16', () => f32ToBf16(x, bits)],
    ['f32 -> bf16 (scalar loop)', () => { for (let i = 0; i < n; i++) bits[i] = f32ToBf16Bits(x[i]!); }],
    ['f32 -> f16', () => f32ToF16(x, bits)],
    ['bf16 -> f32', () => bf16ToF32(bits, out)],
    ['f16 -> f32', () => f16ToF32(bits, out)],
  ];
  for (const [, f] of cases) for (let i = 0; i < 3; i++) f();
  const bestMs: Record<string, number> = {};
  // Rounds interleave the cases, so load that comes and goes touches each alike.
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of cases) {
      const t = performance.now();
      f();
      bestMs[name] = Math.min(bestMs[name] ?? Infinity, performance.now() - t);
    }
  }
  const mValuesPerSec = Object.fromEntries(Object.entries(bestMs).map(([k, ms]) => [k, Math.round(n / ms / 1e3)]));
  const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
  log(`${n} values, best of ${rounds}:`);
  for (const [name, ms] of Object.entries(bestMs)) log(`  ${name.padEnd(26)} ${ms.toFixed(2).padStart(7)} ms  ${String(mValuesPerSec[name]).padStart(5)} M values/s`);
  return { values: n, rounds, bestMs, mValuesPerSec };
}
