// The scheduler's published picture of the cluster: who is in it (by role, with stable ranks)
// and the hash ring placing keys on servers. Every change bumps the epoch.
import { HashRing, keyHash } from './hash-ring.ts';
import { Role, type ClusterViewMsg, type MemberMsg } from '../wire/codec.ts';

export class ClusterView {
  readonly servers: MemberMsg[];
  readonly workers: MemberMsg[];
  readonly ring: HashRing;

  constructor(readonly msg: ClusterViewMsg) {
    const byRank = (a: MemberMsg, b: MemberMsg) => a.rank - b.rank || a.nodeId.localeCompare(b.nodeId);
    this.servers = msg.members.filter((m) => m.role === Role.Server).sort(byRank);
    this.workers = msg.members.filter((m) => m.role === Role.Worker).sort(byRank);
    this.ring = new HashRing(this.servers.map((s) => s.nodeId), msg.vnodes);
  }

  get epoch(): number { return this.msg.epoch; }
  get replicas(): number { return this.msg.replicas; }
  /** Changes only when the worker set does: the allreduce ring is rebuilt exactly then. */
  get workersEpoch(): number { return this.msg.workersEpoch ?? 0; }
  /** The scheduler's last view of a job that has ended (every expected worker finished). */
  get jobEnded(): boolean { return !!this.msg.jobEnded; }

  static empty(): ClusterView {
    return new ClusterView({ epoch: 0, members: [], vnodes: 64, replicas: 1 });
  }

  /** The server (member) that owns row `key` of `table`. */
  ownerOf(table: number, key: bigint): MemberMsg {
    const lo = Number(key & 0xffffffffn), hi = Number(key >> 32n);
    return this.servers[this.ring.ownerOfHash(keyHash(table, lo, hi))]!;
  }

  /** The owner of a key given as its two 32-bit words. */
  ownerOfWords(table: number, lo: number, hi: number): MemberMsg {
    return this.servers[this.ring.ownerOfHash(keyHash(table, lo, hi))]!;
  }

  /** Replication chain of a key: owner first. */
  chainOf(table: number, lo: number, hi: number): MemberMsg[] {
    return this.ring.chainOfHash(keyHash(table, lo, hi), this.replicas).map((i) => this.servers[i]!);
  }

  hasWorker(rank: number): boolean { return this.workers.some((w) => w.rank === rank); }
}
