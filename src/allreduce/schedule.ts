// Who sends and receives which block at which step, for each schedule, and which schedule an op
// runs (chooseSchedule). The ring first. The flat buffer of n elements is cut into W
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

// ---------------------------------------------------------------------------------------------
// Recursive halving/doubling (Rabenseifner), W a power of two, m = log2 W. The same W blocks.
// Reduce-scatter by recursive halving: at step k (0..m-1) a rank's window of W >> k blocks (the
// aligned one holding its own block) is split in two; it sends the half without its block to its
// partner rank ^ (W >> (k+1)), which holds that half's window, and adds the other half that the
// partner sends back. After m steps rank r holds the full sum of block r. All-gather by recursive
// doubling: at step m + j the partner is rank ^ (1 << j); each sends the 2^j blocks it has
// complete and copies the partner's, so the window doubles. 2 log2 W steps against the ring's
// 2(W-1), the same bytes per rank (2(W-1)/W of the buffer each way).

export const isPowerOfTwo = (w: number): boolean => w >= 1 && (w & (w - 1)) === 0;

/** One step of halving/doubling for one rank: the partner, what it sends and receives (element ranges). */
export interface HalvingStep {
  peer: number;
  /** Reduce-scatter (received values are added) or all-gather (copied). */
  reduce: boolean;
  sendLo: number; sendHi: number;
  recvLo: number; recvHi: number;
}

/** The 2 log2 W steps of `rank` for a buffer of n elements (W a power of two, at least 2). */
export function halvingSteps(rank: number, w: number, n: number): HalvingStep[] {
  if (!isPowerOfTwo(w) || w < 2) throw new RangeError(`recursive halving/doubling needs a power of two of at least 2 workers, got ${w}`);
  const m = 31 - Math.clz32(w);
  const range = (firstBlock: number, blocks: number) => [blockStart(firstBlock, n, w), blockStart(firstBlock + blocks, n, w)] as const;
  const aligned = (r: number, h: number) => r - (r % h);
  const steps: HalvingStep[] = [];
  for (let k = 0; k < m; k++) {
    const h = w >> (k + 1), peer = rank ^ h;
    const [sendLo, sendHi] = range(aligned(peer, h), h), [recvLo, recvHi] = range(aligned(rank, h), h);
    steps.push({ peer, reduce: true, sendLo, sendHi, recvLo, recvHi });
  }
  for (let j = 0; j < m; j++) {
    const h = 1 << j, peer = rank ^ h;
    const [sendLo, sendHi] = range(aligned(rank, h), h), [recvLo, recvHi] = range(aligned(peer, h), h);
    steps.push({ peer, reduce: false, sendLo, sendHi, recvLo, recvHi });
  }
  return steps;
}

/** The ranks `rank` exchanges with under halving/doubling (one per reduce-scatter step). */
export function halvingPartners(rank: number, w: number): number[] {
  const out: number[] = [];
  for (let h = w >> 1; h >= 1; h >>= 1) out.push(rank ^ h);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The choice. Every rank decides from W and the byte length alone, which all share; the segment
// header's schedule flags make a rank that decided otherwise fail with the cause.

export type Schedule = 'exchange' | 'halving' | 'ring';

export interface ScheduleLimits {
  /** W = 2 and at most this many bytes: the direct exchange. */
  exchangeMaxBytes: number;
  /** W a power of two and at least this many bytes: recursive halving/doubling (Infinity: never). */
  halvingMinBytes: number;
}

export function chooseSchedule(w: number, bytes: number, limits: ScheduleLimits): Schedule {
  if (w === 2 && bytes <= limits.exchangeMaxBytes) return 'exchange';
  if (w >= 2 && isPowerOfTwo(w) && bytes >= limits.halvingMinBytes) return 'halving';
  return 'ring';
}
