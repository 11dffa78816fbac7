// The data streams of one ring epoch on one rank: a SegmentSender to every peer this rank sends
// to and a SegmentReceiver from every peer it receives from. The ring needs the right and the left
// neighbour; recursive halving/doubling (W a power of two) also its partners at distances W/2,
// W/4, .., 1 (schedule.ts), which are non-neighbours from W = 4 up. Every stream is opened the
// same way (data-handshake.ts: the receiving rank dials, both sides prove the cluster secret, bound
// to the direction and the ring epoch) and a rank admits a stream only from a peer it sends to in
// this epoch. Any stream closing, or any segment that does not fit, breaks the ring (onBroken).
import type { Socket } from 'node:net';
import { SegmentReceiver, type SegmentTarget } from './segment-receiver.ts';
import { SegmentSender, type OutSegment } from './segment-sender.ts';
import type { SegmentHeader } from './segment-header.ts';
import { halvingPartners } from './schedule.ts';
import type { TlsCredentials } from '../transport/tls.ts';

export interface DataStreamsOptions {
  nodeId: string;
  secret: Uint8Array;
  /** TLS credentials: every stream then runs over mutual TLS (data-socket.ts). */
  tls?: TlsCredentials;
  ringEpoch: number;
  /** The ring's members in rank order, and this rank. */
  members: readonly { nodeId: string; address: string }[];
  rank: number;
  /** Open the halving/doubling partners' streams too (W a power of two and the schedule enabled). */
  halving: boolean;
  connectTimeoutMs: number;
  receiveBufferBytes?: number;
  lookup: (h: SegmentHeader) => SegmentTarget | null;
  /** Read counter of every receiver. */
  io: { reads: number };
  /** One call per segment written. */
  onSent: (payloadBytes: number) => void;
  onReceived: (payloadBytes: number, inPlace: boolean) => void;
  onBroken: (why: string) => void;
}

export class DataStreams {
  private readonly senders = new Map<string, SegmentSender>();
  private readonly receivers: SegmentReceiver[] = [];
  private readonly rightId: string;
  private readonly partnerIds: string[];

  constructor(private readonly o: DataStreamsOptions) {
    const w = o.members.length, id = (r: number) => o.members[r]!.nodeId;
    const partners = o.halving ? halvingPartners(o.rank, w) : [];
    const right = (o.rank + 1) % w, left = (o.rank - 1 + w) % w;
    this.rightId = id(right);
    this.partnerIds = partners.map(id);
    for (const r of new Set([right, ...partners])) this.senders.set(id(r), new SegmentSender(o.onSent));
    for (const r of new Set([left, ...partners])) {
      const peer = o.members[r]!;
      this.receivers.push(new SegmentReceiver({
        url: peer.address, peer: peer.nodeId, role: r === left ? 'left neighbour' : 'halving partner',
        nodeId: o.nodeId, secret: o.secret, tls: o.tls, ringEpoch: o.ringEpoch, connectTimeoutMs: o.connectTimeoutMs,
        bufferBytes: o.receiveBufferBytes, io: o.io, lookup: o.lookup, onBytes: o.onReceived, onBroken: o.onBroken,
      }));
    }
  }

  /** Queues `seg` for rank `to` (its stream exists: the schedules only send to the peers above). */
  send(to: number, seg: OutSegment): void {
    const sender = this.senders.get(this.o.members[to]!.nodeId);
    if (!sender) throw new Error(`internal error: no data stream from rank ${this.o.rank} to rank ${to} in ring epoch ${this.o.ringEpoch}`);
    sender.send(seg);
  }

  /** An op started or made progress: receivers waiting for it read on. */
  wake(): void {
    for (const r of this.receivers) r.wake();
  }

  /** Whether `peerId` may open its stream from this rank now: null, or why not. */
  refusal(peerId: string): string | null {
    const sender = this.senders.get(peerId);
    if (!sender) {
      const partners = this.partnerIds.filter((p) => p !== this.rightId);
      return `${peerId} is not the right neighbour of ${this.o.nodeId} in ring epoch ${this.o.ringEpoch} (${this.rightId} is)` +
        (partners.length ? ` nor a halving/doubling partner (${partners.join(', ')})` : '');
    }
    if (sender.attached) return `a data stream for ring epoch ${this.o.ringEpoch} from ${peerId} is already open`;
    return null;
  }

  /** Attaches an authenticated stream from `peerId`; false when it may not have one (any more). */
  attach(peerId: string, socket: Socket): boolean {
    if (this.refusal(peerId) !== null) return false;
    const role = peerId === this.rightId ? 'right neighbour' : 'halving partner';
    this.senders.get(peerId)!.attach(socket, () => this.o.onBroken(`data stream to ${role} ${peerId} closed`));
    return true;
  }

  close(): void {
    for (const s of this.senders.values()) s.close();
    for (const r of this.receivers) r.close();
  }
}
