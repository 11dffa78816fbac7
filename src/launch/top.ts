// `hybridps top`: a live view of a running job from its servers' own numbers. It joins as an
// observer (Role.Client: gets views, is not a member, trains nothing), asks every server of the
// view for its status every interval, and prints per server the requests and rows per second
// since the last poll, pulls waiting at a consistency gate (the queue a slow worker or a hot
// server builds), the p99 pull and push time, and rows held; then one line on sizing: a server
// far above the others' load is hot (a skewed key range), and when every server is busy or
// idle, the server count looks too small or too large for the load.
import { PSClient } from '../client/ps-client.ts';
import { Role } from '../wire/codec.ts';
import type { TlsCredentials } from '../transport/index.ts';

interface ServerStatus {
  nodeId: string; epoch: number; waitingPulls: number;
  stats: { pulls: number; pushes: number; rowsPulled: number; rowsPushed: number; bytesIn: number; bytesOut: number; applyMs: number; pullFrames: number; pushFrames: number };
  latencyMs?: { pullP99: number; pushP99: number };
  tables: { rows: number }[];
}

export interface TopRow { server: string; reqPerS: number; rowsPerS: number; waitingPulls: number; pullP99Ms: number; pushP99Ms: number; rows: number; busy: number }

/** Per-server rates between two polls `dtS` seconds apart; busy = share of the interval spent applying pushes. */
export function topRows(prev: Map<string, ServerStatus>, now: ServerStatus[], dtS: number): TopRow[] {
  return now.map((s) => {
    const p = prev.get(s.nodeId);
    const d = (k: keyof ServerStatus['stats']) => (p ? s.stats[k] - p.stats[k] : 0) / dtS;
    return {
      server: s.nodeId, reqPerS: d('pullFrames') + d('pushFrames'), rowsPerS: d('rowsPulled') + d('rowsPushed'),
      waitingPulls: s.waitingPulls, pullP99Ms: s.latencyMs?.pullP99 ?? 0, pushP99Ms: s.latencyMs?.pushP99 ?? 0,
      rows: s.tables.reduce((a, t) => a + t.rows, 0), busy: d('applyMs') / 1000,
    };
  });
}

/** One line on whether the server count fits the load (null while there is no load to judge). */
export function sizingAdvice(rows: TopRow[]): string | null {
  const load = rows.map((r) => r.rowsPerS);
  const total = load.reduce((a, b) => a + b, 0);
  if (rows.length === 0 || total === 0) return null;
  const mean = total / rows.length, hottest = rows[load.indexOf(Math.max(...load))]!;
  if (rows.length > 1 && hottest.rowsPerS > 2 * mean) {
    return `${hottest.server} carries ${(hottest.rowsPerS / mean).toFixed(1)}x the mean load: a hot key range (more vnodes, or fewer rows per hot table) before more servers`;
  }
  const busy = rows.map((r) => r.busy), minBusy = Math.min(...busy), maxBusy = Math.max(...busy);
  if (minBusy > 0.7) return `every server applies pushes ${Math.round(minBusy * 100)}%+ of the time: too few servers for this load`;
  if (maxBusy < 0.05 && rows.length > 1) return `no server is busy more than ${Math.round(maxBusy * 100)}% of the time: fewer servers would do`;
  return 'load is spread evenly and servers have headroom';
}

export async function runTop(o: { schedulerUrl: string; secret: Uint8Array; tls?: TlsCredentials; intervalS: number; once: boolean; json: boolean }): Promise<void> {
  const client = await PSClient.connect({ secret: o.secret, tls: o.tls, schedulerUrl: o.schedulerUrl, role: Role.Client, nodeId: `top-${process.pid}` });
  let prev = new Map<string, ServerStatus>();
  let last = performance.now();
  try {
    for (let round = 0; ; round++) {
      const now = (await client.serverStats()) as ServerStatus[];
      const t = performance.now();
      const rows = topRows(prev, now, (t - last) / 1000);
      prev = new Map(now.map((s) => [s.nodeId, s]));
      last = t;
      if (round > 0) print(rows, o.json); // the first poll has no earlier one to take rates from
      if (o.once && round > 0) return;
      await new Promise((r) => setTimeout(r, o.intervalS * 1000));
    }
  } finally {
    await client.close();
  }
}

function print(rows: TopRow[], json: boolean): void {
  const advice = sizingAdvice(rows);
  if (json) { process.stdout.write(JSON.stringify({ servers: rows, advice }) + '\n'); return; }
  const line = (cells: (string | number)[]) => cells.map((c, i) => String(c)[i === 0 ? 'padEnd' : 'padStart'](i === 0 ? 14 : 11)).join(' ');
  const out = [`${new Date().toISOString().slice(11, 19)}  ${rows.length} servers`, line(['server', 'req/s', 'rows/s', 'waiting', 'pull p99', 'push p99', 'busy', 'rows'])];
  for (const r of rows) {
    out.push(line([r.server, r.reqPerS.toFixed(0), r.rowsPerS.toFixed(0), r.waitingPulls, `${r.pullP99Ms} ms`, `${r.pushP99Ms} ms`, `${Math.round(r.busy * 100)}%`, r.rows]));
  }
  if (advice) out.push(advice);
  process.stdout.write(out.join('\n') + '\n\n');
}
