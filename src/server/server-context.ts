// What a server's units share: its membership (view, links to other servers), its tables, the
// consistency gate, the push deduper, its counters and its log. One object, made by PsServer.
import type { ClusterMember } from '../cluster/member.ts';
import type { Logger } from '../util/log.ts';
import type { Tables } from './tables.ts';
import type { ConsistencyGate } from './consistency.ts';
import type { PushDeduper } from './push-deduper.ts';
import type { ServerStats } from './server-stats.ts';

export interface ServerContext {
  readonly member: ClusterMember;
  readonly tables: Tables;
  readonly gate: ConsistencyGate;
  readonly dedup: PushDeduper;
  readonly stats: ServerStats;
  readonly log: Logger;
}
