// An attacker in a process of its own, for test/fuzz-hostile-mix.test.ts: every attack of
// docs/wire.md ("Bounds", "Authorization") at once, each in its own loop, for `ms` milliseconds.
// Command (JSON line): { cmd: 'mix', scheduler, server, epoch, victimRank, ms } answers with how
// many times each attack was made and how each was answered.
import { connect as tcpConnect, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import WebSocket from 'ws';
import type { Link } from '../../src/transport/framed-socket.ts';
import { serveCommands } from './json-proc.ts';
import { SECRET } from './secret.ts';
import { aliasedClusterView, aliasedDeclareTables, encodeMisaligned } from './hostile-frames.ts';
import { dial, type Connection } from '../../src/transport/index.ts';
import { encode, Role, type Body } from '../../src/wire/codec.ts';
import type { RequestBody } from '../../src/wire/replies.ts';

// The attacker shares the targets' cores here (it would not, from another machine): it runs at the
// lowest priority, so what the test measures is the targets' cost, not this process's.
setPriority(19);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keys16 = BigUint64Array.from({ length: 16 }, (_, i) => BigInt(i));

interface Mix { scheduler: string; server: string; epoch: number; victimRank: number; ms: number; skip?: string[] }

async function mix(m: Mix): Promise<Record<string, number>> {
  const end = performance.now() + m.ms;
  const live = () => performance.now() < end;
  const count: Record<string, number> = {};
  const add = (what: string, n = 1) => { count[what] = (count[what] ?? 0) + n; };
  /** `body` as a request on `conn`; counts the answer's kind (an error by its first words). */
  const ask = (what: string, conn: Connection, body: RequestBody, timeoutMs = 2000) =>
    conn.request(body, timeoutMs).then((r) => add(`${what}: answered ${r.body.type}`), () => add(`${what}: refused`));
  const link = async (url: string, nodeId: string, role: Role, address?: string) =>
    (await dial(url, { nodeId, secret: SECRET, role, address, epoch: () => m.epoch })).conn;
  /** A link that reads nothing from now on. */
  const deaf = async (nodeId: string) => {
    const conn = await link(m.server, nodeId, Role.Worker);
    conn.ws.removeAllListeners('message');
    conn.ws.pause();
    return conn;
  };
  /** Sends `frame` while the socket takes it, until the end. */
  const flood = async (what: string, ws: Link, frame: Uint8Array) => {
    while (live() && ws.readyState === WebSocket.OPEN) {
      let burst = 0;
      while (ws.bufferedAmount < 1 << 20 && burst++ < 2000) { ws.send(frame); add(what); }
      await sleep(burst > 1 ? 0 : 5);
    }
  };
  // Every attacker's link first: the slow hellos below fill the listeners' unauthenticated slots.
  const links = {
    aliasedS: await link(m.server, 'mix-aliased-s', Role.Worker), aliasedC: await link(m.scheduler, 'mix-aliased-c', Role.Client),
    misaligned: await link(m.server, 'mix-misaligned', Role.Worker), deafPulls: await deaf('mix-deaf-pulls'), deafTiny: await deaf('mix-deaf-tiny'),
    unauthorized: await link(m.server, 'mix-unauthorized', Role.Worker),
    barriers: await dial(m.scheduler, { nodeId: 'mix-barriers', secret: SECRET, role: Role.Worker, address: 'ws://10.66.6.7:1' }),
  };
  const frame = (body: Body, sender: string) => encode({ requestId: 7, reply: false, sender, epoch: m.epoch, body }).slice();

  const attacks: Record<string, () => Promise<void>> = {
    async aliased() {
      const toServer = links.aliasedS, toSched = links.aliasedC;
      const tables = aliasedDeclareTables(13_000, 13_000, 77), view = aliasedClusterView(40_000, 10_000, 78);
      for (let i = 0; live(); i++) {
        toServer.ws.send(tables); toSched.ws.send(tables); add('aliased DeclareTables', 2);
        if (i % 4 === 0) { toSched.ws.send(view); add('aliased ClusterView'); }
        await sleep(50);
      }
    },
    async misaligned() {
      const conn = links.misaligned;
      for (let k = 0; live(); k = (k + 1) % 8) {
        const env = (body: Body) => encodeMisaligned({ requestId: 1000 + k, reply: false, sender: 'mix-misaligned', epoch: m.epoch, body }, k);
        conn.ws.send(env({ type: 'pull', table: 1, keys: keys16, clock: -1, worker: -1 }));
        conn.ws.send(env({ type: 'push', table: 1, keys: keys16, values: new Float32Array(16 * 8).fill(NaN), worker: 0, clock: 0, seq: 9000 + k }));
        add('misaligned pull + NaN push');
        await sleep(10);
      }
    },
    async unreadPulls() {
      const keys = BigUint64Array.from({ length: 4096 }, (_, i) => BigInt(i));
      const conn = links.deafPulls;
      await flood('unread 1 MiB pulls', conn.ws, frame({ type: 'pull', table: 2, keys, clock: -1, worker: -1 }, 'mix-deaf-pulls'));
      conn.ws.terminate();
    },
    async tinyFrames() {
      const conn = links.deafTiny;
      await flood('7-byte malformed frames', conn.ws, Uint8Array.of(1, 2, 3, 4, 5, 6, 7));
      conn.ws.terminate();
    },
    async oversizedPreAuth() {
      const big = new Uint8Array(8 << 20);
      for (let i = 0; live(); i++) {
        const ws = new WebSocket(i % 2 ? m.scheduler : m.server, { perMessageDeflate: false });
        ws.on('error', () => {});
        const closed = new Promise<number>((r) => ws.once('close', r));
        ws.once('message', () => ws.send(big));
        add(`8 MiB pre-auth frame: closed ${await Promise.race([closed, sleep(3000).then(() => 'late')])}`);
        ws.terminate();
      }
    },
    async slowHellos() {
      while (live()) {
        const socks: Socket[] = [];
        for (const url of [m.server, m.scheduler]) {
          const port = Number(new URL(url).port);
          for (let i = 0; i < 12; i++) { const s = tcpConnect(port, '127.0.0.1'); s.on('error', () => {}); socks.push(s); }
        }
        add('silent TCP connections', socks.length);
        await sleep(1000);
        for (const s of socks) s.destroy();
      }
    },
    async duplicateIds() {
      for (let i = 0; live(); i++) {
        const [nodeId, role] = ([['good', Role.Worker], ['good', Role.Client], ['server-0', Role.Server]] as const)[i % 3]!;
        await dial(m.scheduler, { nodeId, secret: SECRET, role, address: 'ws://10.66.6.6:1' })
          .then(async (d) => { add('duplicate node-id hello: ACCEPTED'); await d.conn.close(); }, () => add('duplicate node-id hello: refused'));
        await sleep(30);
      }
    },
    async unauthorized() {
      const conn = links.unauthorized;
      const slots = new Float32Array(16 * 8);
      for (let i = 0; live(); i++) {
        slots.fill(i % 2 ? NaN : Infinity);
        await Promise.all([
          ask('copyRows with non-finite slots', conn, { type: 'copyRows', table: 1, keys: keys16, values: new Float32Array(16 * 8), slots, slotCount: 1, steps: new Uint32Array(16) }),
          ask('clock for the victim rank', conn, { type: 'clock', worker: m.victimRank, clock: 1_000_000 + i }),
          ask('assignRows', conn, { type: 'assignRows', table: 1, keys: keys16, values: new Float32Array(16 * 8).fill(9) }),
          ask('copyPending', conn, { type: 'copyPending', table: 1, clock: 0, keys: keys16, sums: new Float64Array(16 * 8).fill(9), applied: [] }),
        ]);
        await sleep(5);
      }
    },
    async barrierNames() {
      // A registered worker (its own rank): its first barriers wait, the rest are refused at the limit.
      const { conn, welcome } = links.barriers;
      const rank = welcome.view?.members.find((x) => x.nodeId === 'mix-barriers')?.rank ?? -1;
      for (let i = 0; live(); i++) {
        await ask('barrier with a fresh name', conn, { type: 'barrier', name: `flood-${i}-${'n'.repeat(200)}`, worker: rank, generation: 0 }, 100);
        if (i % 8 === 0) await sleep(1); // on the targets' two cores, an unthrottled loop here only measures this process
      }
      await conn.close();
    },
  };
  await Promise.all(Object.entries(attacks).filter(([name]) => !m.skip?.includes(name)).map(([name, run]) => run().catch((e: Error) => add(`${name} stopped: ${e.message}`))));
  return count;
}

serveCommands(async (msg) => {
  if (msg.cmd !== 'mix') throw new Error(`unknown command ${msg.cmd}`);
  return { count: await mix(msg as Mix) };
});
