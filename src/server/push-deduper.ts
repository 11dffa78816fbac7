// Remembers the most recent (sender, seq) pushes applied, so a push re-sent after a lost ack or a
// re-route is applied once. A client numbers its pushes with one counter across all servers, so
// each server sees a sparse subset; we keep the last WINDOW numbers per sender (retries come
// soon after the original, far inside the window).
const WINDOW = 1 << 16;

interface SenderSeqs { set: Set<number>; ring: Float64Array; next: number }

export class PushDeduper {
  private senders = new Map<string, SenderSeqs>();

  seen(sender: string, seq: number): boolean {
    return !!this.senders.get(sender)?.set.has(seq);
  }

  record(sender: string, seq: number): void {
    let s = this.senders.get(sender);
    if (!s) this.senders.set(sender, (s = { set: new Set(), ring: new Float64Array(WINDOW).fill(-1), next: 0 }));
    if (s.set.has(seq)) return;
    const evict = s.ring[s.next]!;
    if (evict >= 0) s.set.delete(evict);
    s.ring[s.next] = seq;
    s.next = (s.next + 1) % WINDOW;
    s.set.add(seq);
  }

  /** Every remembered (sender, seqs), oldest first: what a server taking over keys needs. */
  export(): [string, number[]][] {
    return [...this.senders].map(([sender, s]) => {
      const seqs: number[] = [];
      for (let i = 0; i < WINDOW; i++) { const q = s.ring[(s.next + i) % WINDOW]!; if (q >= 0) seqs.push(q); }
      return [sender, seqs];
    });
  }
}
