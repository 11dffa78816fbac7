// Which server hands each key to a server taking its rows over (handoff.ts), and which keys no
// server can hand any more. The rule is "one source per key": the first server of the key's chain
// in the *basis* view (the view before the taker's incarnation was first listed) that is still in
// the current view as the same incarnation (same `since`: a server that restarted or registered
// again since holds nothing of the basis). Rows and unapplied BSP sums of a key come from that one
// server's snapshot; taking them from several holders let a backup whose clock had not completed
// yet overwrite the head's applied rows, or sums land twice (`npm run chaos`, two kills, 2026-12-02).
// The basis stays the same while a take-over is retried under later views: when a source is cut
// off mid-way and declared dead, the next live member of the same basis chain is the new source
// (`npm run chaos -- --partitions`, 2026-12-02). When no member of a basis chain is live, both
// copies are gone: `lostArcs` names the ring arcs, and the take-over stops with DataLost.
import type { ClusterView } from '../cluster/cluster-view.ts';
import type { MemberMsg } from '../wire/codec.ts';

const RING = 2 ** 32;

/** Servers of `view` (less `to`) that are the incarnation `basis` lists: they hold what the basis gave them. */
export function liveHolders(basis: ClusterView, view: ClusterView, to: string): Set<string> {
  const before = new Map(basis.servers.map((m) => [m.nodeId, m.since ?? 0]));
  return new Set(view.servers.filter((m) => m.nodeId !== to && before.get(m.nodeId) === (m.since ?? 0)).map((m) => m.nodeId));
}

/** A key's source, given its basis chain: the chain's first live holder (undefined: none is left). */
export function sourceOf(chain: readonly MemberMsg[], live: ReadonlySet<string>): string | undefined {
  return chain.find((m) => live.has(m.nodeId))?.nodeId;
}

export interface LostArcs {
  /** Ring arcs (lo, hi] of key hashes (hash-ring.ts keyHash, every table alike), merged. */
  arcs: [number, number][];
  /** Their share of the ring. */
  fraction: number;
  /** The servers that held them in the basis view (none of them live as that incarnation now). */
  heldBy: string[];
}

/**
 * The arcs of the hash ring that `to` heads in `view` whose basis chain has no live holder: their
 * rows are lost (R copies gone inside one take-over). Between two consecutive positions of either
 * ring both chains are constant, so each such interval is judged by its upper end.
 */
export function lostArcs(basis: ClusterView, view: ClusterView, to: string): LostArcs {
  const out: LostArcs = { arcs: [], fraction: 0, heldBy: [] };
  if (basis.servers.length === 0 || view.servers.length === 0) return out; // a fresh cluster: nothing was held
  const live = liveHolders(basis, view, to);
  const bounds = [...new Set([...basis.ring.positions, ...view.ring.positions])].sort((a, b) => a - b);
  const held = new Set<string>();
  let length = 0;
  bounds.forEach((h, i) => {
    if (view.servers[view.ring.ownerOfHash(h)]!.nodeId !== to) return;
    const chain = basis.ring.chainOfHash(h, basis.replicas).map((s) => basis.servers[s]!);
    if (sourceOf(chain, live) !== undefined) return;
    const lo = i === 0 ? bounds.at(-1)! : bounds[i - 1]!;
    const last = out.arcs.at(-1);
    if (last && last[1] === lo) last[1] = h; else out.arcs.push([lo, h]);
    length += i === 0 ? RING - lo + h : h - lo;
    for (const m of chain) held.add(m.nodeId);
  });
  out.fraction = length / RING;
  out.heldBy = [...held].sort();
  return out;
}

/** One line for an error: the share of the ring, the first arcs, and who held them. */
export function describeLost(lost: LostArcs, basis: ClusterView): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
  const shown = lost.arcs.slice(0, 4).map(([lo, hi]) => `(${hex(lo)}, ${hex(hi)}]`).join(', ');
  return `${lost.arcs.length} ring arc(s) of key hashes, ${(lost.fraction * 100).toFixed(2)}% of the rows of every table ` +
    `(${shown}${lost.arcs.length > 4 ? ', ...' : ''}), held in view ${basis.epoch} only by ${lost.heldBy.join(', ')}, none of which is still live as that incarnation`;
}
