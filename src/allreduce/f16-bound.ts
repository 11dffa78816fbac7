// How far an f16-on-the-wire allreduce can be from the exact sum, element by element.
//
// Along the ring, block b's partial sum p_k (k = 1..W, over the first k ranks' values) is rounded
// to f16 once per hop before it is sent (W-1 roundings), the receiver adds its own value in f32,
// and the owner rounds the finished sum to f16 once more before the all-gather (so every rank
// holds the same f16-representable bits). With u = 2^-11 (f16 round-to-nearest), v = 2^-24 (f32),
// A = sum_i |x_i|, every |p_k| <= A (1+u)^k (1+v)^k, and each rounding of y costs at most
// u|y| + 2^-25 (the 2^-25 covers f16 subnormals), so
//
//   |result - sum_i x_i| <= W (u + v) (1+u)^W A + W 2^-25              (sum)
//   |result - mean_i x_i| <= W (u + v) (1+u)^W A / W + W 2^-25         (mean: divided once, at the owner)
//
// i.e. about W * 2^-11 * sum|x_i|. It assumes no partial sum leaves the f16 range (|p| <= 65504);
// beyond that the value becomes +/-Infinity. Recursive halving/doubling rounds each partial sum
// log2 W times on the wire (one per reduce-scatter step, each over at most all W ranks' values)
// and the owner once more, fewer roundings than the ring's, so the same bound holds.

const U16 = 2 ** -11;
const U32 = 2 ** -24;
const SUBNORMAL = 2 ** -25;

/** The bound above for one element: `sumAbs` = sum over ranks of |x_i|. */
export function f16ErrorBound(workers: number, sumAbs: number, op: 'sum' | 'mean' = 'sum'): number {
  if (workers <= 1) return 0; // nothing goes on the wire
  const rel = workers * (U16 + U32) * (1 + U16) ** workers * sumAbs;
  return (op === 'mean' ? rel / workers : rel) + workers * SUBNORMAL;
}
