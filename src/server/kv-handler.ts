// Pulls and pushes (ps-lite's KVServer request handle). A pull is answered by the head of each
// key's chain once the table's consistency model lets it read. A push is checked, cut down to the
// rows this server has not applied under its (sender, seq) yet, handed to the consistency gate
// (applied now, or summed for its BSP clock), and forwarded down each key's replication chain.
import type { Body, PullBody, PushBody } from '../wire/codec.ts';
import type { ServerContext } from './server-context.ts';
import { subsetPush, type Replication } from './replication.ts';
import { checkKeys, pushProblem, refuse } from './request-checks.ts';

const EMPTY = new Float32Array(0);

export class KvHandler {
  constructor(private readonly ctx: ServerContext, private readonly replication: Replication) {}

  async pull(p: PullBody): Promise<Body> {
    const t = this.ctx.tables.get(p.table);
    refuse(checkKeys(p.keys));
    this.replication.nextHops(p.table, p.keys, true); // only the head answers, so every reader sees one copy
    await this.ctx.gate.beforePull(t, p.clock);
    this.ctx.stats.pulls++;
    this.ctx.stats.rowsPulled += p.keys.length;
    this.ctx.stats.bytesOut += p.keys.length * t.spec.dim * 4;
    // The rows are copied straight into the reply frame when it is encoded (keys view the request
    // frame, which ws does not reuse).
    const keys = p.keys;
    return {
      type: 'pullReply', table: p.table, dim: t.spec.dim, values: EMPTY, f16: p.f16,
      writer: { length: keys.length * t.spec.dim, write: (dst) => { t.store.pull(keys, dst); } },
    };
  }

  /**
   * A push, from a worker (`hop` 0: this server must head every key's chain) or forwarded down
   * a replication chain (`hop` 1). Applied locally once per (sender, seq), then forwarded to the
   * next server of each key's chain; acknowledged only when the chain's tail has it.
   */
  async push(p: PushBody, sender: string, hop: 0 | 1): Promise<Body> {
    const t = this.ctx.tables.get(p.table);
    refuse(pushProblem(t.spec.dim, p.keys, p.values));
    // Only the rows this server has not applied under (sender, seq) yet: a retry of a push may
    // arrive here whole, in part, or as a part that another head already forwarded (see PushDeduper).
    const fresh = this.ctx.dedup.unapplied(sender, p.seq, p.keys);
    const freshRows = fresh ? fresh.length : p.keys.length;
    this.ctx.gate.admitPush(t, p.clock, freshRows);
    const next = this.replication.nextHops(p.table, p.keys, hop === 0);
    const duplicate = freshRows === 0;
    if (duplicate) {
      this.ctx.stats.duplicatePushes++;
    } else {
      const part = fresh ? subsetPush(p, fresh, t.spec.dim) : p;
      this.ctx.gate.take(t, p.clock, part.keys, part.values);
      this.ctx.dedup.record(sender, p.seq, part.keys, p.table);
      this.ctx.stats.pushes++;
      this.ctx.stats.rowsPushed += part.keys.length;
      this.ctx.stats.bytesIn += part.values.byteLength;
    }
    // Forward even a duplicate: the first attempt may have died before reaching the tail.
    await this.replication.forward(next, p, sender, t.spec.dim);
    return { type: 'pushAck', seq: p.seq, applied: !duplicate && this.ctx.gate.appliesOnArrival(t) };
  }
}
