// Who sends and receives which block at which step. The flat buffer of n elements is cut into W
// contiguous blocks (sizes differ by at most one; blocks may be empty when n < W). Steps
// 0..W-2 are the reduce-scatter, steps W-1..2W-3 the all-gather; at every step each rank sends
// one block to its right neighbour and receives one from its left.
//
// The block a rank receives at step s is the block it sends at step s+1, so a received segment
// can be forwarded as soon as it is reduced: a segment flows round the ring without waiting for
// the rest of its block (the pipeline). After the reduce-scatter rank r owns the full sum of
// block r+1; the all-gather only copies, so every rank ends with the owner's bits.

export const mod = (a: number, w: number): number => ((a % w) + w) % w;

/** Number of wire steps: W-1 reduce-scatter plus W-1 all-gather. */
export const stepCount = (w: number): number => 2 * (w - 1);

/** Element offset where block b starts (block b is [blockStart(b), blockStart(b+1))). */
export function blockStart(b: number, n: number, w: number): number {
  return Math.floor((b * n) / w);
}

/** Block that `rank` sends at wire step `step`. */
export function sendBlock(rank: number, step: number, w: number): number {
  return step < w - 1 ? mod(rank - step, w) : mod(rank + 1 - (step - (w - 1)), w);
}

/** Block that `rank` receives at wire step `step` (= the block it sends at step + 1). */
export function recvBlock(rank: number, step: number, w: number): number {
  return step < w - 1 ? mod(rank - step - 1, w) : mod(rank - (step - (w - 1)), w);
}

/** True for reduce-scatter steps (received values are added), false for all-gather (copied). */
export const isReduceStep = (step: number, w: number): boolean => step < w - 1;

/** The last reduce-scatter step: what arrives then is the complete sum of the block. */
export const finalReduceStep = (w: number): number => w - 2;
