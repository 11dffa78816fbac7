// A small user-space TCP proxy for the separate-host tests: this kernel has no `netem`, so added
// latency between hosts comes from here. Each mapping listens on one address and forwards every
// connection to one target, holding each chunk `delayMs` in each direction (order kept: a chunk
// never overtakes the one before it), so a request and its reply cost 2 x delayMs more per hop.
// Flow control is TCP's own: a side whose writes back up stops being read until it drains.
// Loss (`--loss P --rto-ms R`): a TCP stream never loses bytes, it stalls while the sender
// retransmits, so a "lost" chunk (chosen with probability P by a seeded PRNG, `--seed`) is held
// R ms more (a retransmission timeout), and every chunk behind it waits too (head-of-line
// blocking): what an application sees of packet loss on a real link.
// Run in a host's namespace as a process of its own:
//   node --import tsx test/helpers/tcp-proxy.ts --delay-ms 2 [--loss 0.01 --rto-ms 200] 10.77.0.101:2222=10.77.0.1:2222 ...
// It prints `ready` once every mapping listens, and on SIGTERM a JSON line of what it carried.
import { createServer, connect, type Socket } from 'node:net';

interface ProxyArgs { delayMs: number; loss: number; rtoMs: number; seed: number; maps: { host: string; port: number; toHost: string; toPort: number }[] }

function parseArgs(argv: string[]): ProxyArgs {
  let delayMs = 0, loss = 0, rtoMs = 200, seed = 1;
  const maps = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--delay-ms') { delayMs = Number(argv[++i]); continue; }
    if (argv[i] === '--loss') { loss = Number(argv[++i]); continue; }
    if (argv[i] === '--rto-ms') { rtoMs = Number(argv[++i]); continue; }
    if (argv[i] === '--seed') { seed = Number(argv[++i]); continue; }
    const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(argv[i]!);
    if (!m) throw new Error(`tcp-proxy: expected LISTEN_IP:PORT=TARGET_IP:PORT, got ${argv[i]}`);
    maps.push({ host: m[1]!, port: Number(m[2]), toHost: m[3]!, toPort: Number(m[4]) });
  }
  if (!(delayMs >= 0)) throw new Error(`tcp-proxy: --delay-ms must be >= 0, got ${delayMs}`);
  if (!(loss >= 0 && loss < 1)) throw new Error(`tcp-proxy: --loss must be in [0, 1), got ${loss}`);
  if (!(rtoMs >= 0) || !Number.isInteger(seed)) throw new Error(`tcp-proxy: --rto-ms must be >= 0 and --seed an integer, got ${rtoMs} and ${seed}`);
  return { delayMs, loss, rtoMs, seed, maps };
}

const stats = { connections: 0, bytes: 0, chunks: 0, lostChunks: 0 };
const args = parseArgs(process.argv.slice(2));
const { delayMs, maps } = args;

/** xorshift32: the same losses for the same seed and the same chunks. */
let rng = (args.seed >>> 0) || 1;
const lost = (): boolean => {
  rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0;
  return rng / 2 ** 32 < args.loss;
};

/** Forwards `from`'s bytes to `to`, each chunk `delayMs` later than it arrived (a lost one `rtoMs` more), in order. */
function pipeDelayed(from: Socket, to: Socket, delayMs: number): void {
  let lastDue = 0;
  from.on('data', (chunk: Buffer) => {
    stats.bytes += chunk.length;
    stats.chunks++;
    const stall = args.loss > 0 && lost() ? (stats.lostChunks++, args.rtoMs) : 0;
    const due = Math.max(Date.now() + delayMs + stall, lastDue);
    lastDue = due;
    setTimeout(() => {
      if (to.destroyed) return;
      if (!to.write(chunk)) { from.pause(); to.once('drain', () => from.resume()); }
    }, due - Date.now());
  });
  // The far side learns of an end or a failure after the bytes before it.
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, lastDue - Date.now())));
  from.on('error', () => setTimeout(() => to.destroy(), Math.max(0, lastDue - Date.now())));
  from.on('close', () => setTimeout(() => to.destroy(), Math.max(0, lastDue - Date.now()) + 1));
}

let listening = 0;
for (const m of maps) {
  const server = createServer((client) => {
    stats.connections++;
    const upstream = connect({ host: m.toHost, port: m.toPort });
    for (const s of [client, upstream]) { s.setNoDelay(true); s.on('error', () => {}); }
    pipeDelayed(client, upstream, delayMs);
    pipeDelayed(upstream, client, delayMs);
  });
  server.on('error', (e) => { process.stderr.write(`tcp-proxy: ${m.host}:${m.port}: ${e.message}\n`); process.exit(1); });
  server.listen(m.port, m.host, () => { if (++listening === maps.length) process.stdout.write('ready\n'); });
}
process.on('SIGTERM', () => { process.stdout.write(`${JSON.stringify({ delayMs, loss: args.loss, rtoMs: args.rtoMs, ...stats })}\n`); process.exit(0); });
