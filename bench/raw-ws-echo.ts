// The baseline for the PS benchmark: plain `ws`, no FlatBuffers, no apply. A server process
// answers each request frame with a frame of the size the request names (first 4 bytes), so
// a client can mimic a pull (small request, big reply) and a push (big request, small reply).
// The client prints `TIMED_START` after its warm-up (bench ps samples the server's CPU from there)
// and its own CPU time over the timed rounds in its JSON line.
import { WebSocketServer, WebSocket } from 'ws';

if (process.argv[2] === 'server') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 256 << 20 });
  const replies = new Map<number, Buffer>();
  wss.on('connection', (ws) => ws.on('message', (data: Buffer) => {
    const n = data.readUInt32LE(0);
    let r = replies.get(n);
    if (!r) replies.set(n, (r = Buffer.alloc(n)));
    ws.send(r);
  }));
  wss.on('listening', () => process.stdout.write(`HYBRIDPS_READY ${JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}` })}\n`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (process.argv[2] === 'client') {
  const [url, smallS, bigS, roundsS, warmupS] = process.argv.slice(3);
  const small = Number(smallS), big = Number(bigS), rounds = Number(roundsS);
  // The same zero mask as hybridps's own links (src/transport/endpoint.ts): a like-for-like baseline.
  const ws = new WebSocket(url!, { perMessageDeflate: false, maxPayload: 256 << 20, generateMask: (m) => { m.fill(0); } });
  await new Promise((r) => ws.once('open', r));
  const req = (size: number, replySize: number) => new Promise<void>((resolve) => {
    const b = Buffer.alloc(Math.max(4, size));
    b.writeUInt32LE(replySize, 0);
    ws.once('message', () => resolve());
    ws.send(b);
  });
  for (let i = 0; i < Number(warmupS ?? 0); i++) { await req(small, big); await req(big + small, 16); } // as the PS client does
  process.stdout.write('TIMED_START\n');
  const cpu0 = process.cpuUsage();
  let pullMs = 0, pushMs = 0;
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await req(small, big); // like a pull: keys out, rows back
    pullMs += performance.now() - t;
    t = performance.now();
    await req(big + small, 16); // like a push: keys and rows out, an ack back
    pushMs += performance.now() - t;
  }
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ pullMs, pushMs, cpuMs: (cpu.user + cpu.system) / 1000, rounds }) + '\n');
  ws.close();
  process.exit(0);
}
