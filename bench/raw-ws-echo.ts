// The baseline for the PS benchmark: plain `ws`, no FlatBuffers, no apply. A server process
// answers each request frame with a frame of the size the request names (first 4 bytes), so
// a client can mimic a pull (small request, big reply) and a push (big request, small reply).
// The client prints `TIMED_START` after its warm-up (bench ps samples the server's CPU from there)
// and its own CPU time over the timed rounds in its JSON line.
// `server-tcp` / `client-tcp`: the same echo over a plain net.Socket with u32-length-prefixed
// frames, each assembled into one buffer as a receiver would hand it on (what a framed link
// without WebSocket would cost; bench/echo-ab.ts runs both interleaved).
import { WebSocketServer, WebSocket } from 'ws';
import { createServer, connect, type Socket } from 'node:net';

/** Calls `onFrame` with each u32-LE-length-prefixed frame of `sock`, as one buffer (no copy when a chunk holds it whole). */
function readFrames(sock: Socket, onFrame: (f: Buffer) => void): void {
  let head = Buffer.alloc(0), frame: Buffer | null = null, filled = 0;
  sock.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (!frame) {
        if (head.length + chunk.length - at < 4) { head = Buffer.concat([head, chunk.subarray(at)]); return; }
        let len: number;
        if (head.length) { const need = 4 - head.length; len = Buffer.concat([head, chunk.subarray(at, at + need)]).readUInt32LE(0); at += need; head = Buffer.alloc(0); }
        else { len = chunk.readUInt32LE(at); at += 4; }
        if (chunk.length - at >= len) { onFrame(chunk.subarray(at, at + len)); at += len; continue; }
        frame = Buffer.allocUnsafe(len); filled = 0;
      }
      const take = Math.min(frame.length - filled, chunk.length - at);
      chunk.copy(frame, filled, at, at + take);
      filled += take; at += take;
      if (filled === frame.length) { const f = frame; frame = null; onFrame(f); }
    }
  });
}

/** Writes one frame: its length, then its bytes (two writes, corked into one syscall). */
function writeFrame(sock: Socket, b: Buffer): void {
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32LE(b.length, 0);
  sock.cork(); sock.write(h); sock.write(b); sock.uncork();
}

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
} else if (process.argv[2] === 'server-tcp') {
  const replies = new Map<number, Buffer>();
  const server = createServer((sock) => {
    sock.setNoDelay(true);
    readFrames(sock, (data) => {
      const n = data.readUInt32LE(0);
      let r = replies.get(n);
      if (!r) replies.set(n, (r = Buffer.alloc(n)));
      writeFrame(sock, r);
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`HYBRIDPS_READY ${JSON.stringify({ url: `tcp://127.0.0.1:${(server.address() as { port: number }).port}` })}\n`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (process.argv[2] === 'client' || process.argv[2] === 'client-tcp') {
  const [url, smallS, bigS, roundsS, warmupS] = process.argv.slice(3);
  const small = Number(smallS), big = Number(bigS), rounds = Number(roundsS);
  let req: (size: number, replySize: number) => Promise<void>, close: () => void;
  if (process.argv[2] === 'client') {
    // The same zero mask as hybridps's own links (src/transport/endpoint.ts): a like-for-like baseline.
    const ws = new WebSocket(url!, { perMessageDeflate: false, maxPayload: 256 << 20, generateMask: (m) => { m.fill(0); } });
    await new Promise((r) => ws.once('open', r));
    req = (size, replySize) => new Promise<void>((resolve) => {
      const b = Buffer.alloc(Math.max(4, size));
      b.writeUInt32LE(replySize, 0);
      ws.once('message', () => resolve());
      ws.send(b);
    });
    close = () => ws.close();
  } else {
    const u = new URL(url!);
    const sock = connect({ host: u.hostname, port: Number(u.port) });
    await new Promise((r) => sock.once('connect', r));
    sock.setNoDelay(true);
    let waiter: (() => void) | null = null;
    readFrames(sock, () => { const w = waiter; waiter = null; w?.(); });
    req = (size, replySize) => new Promise<void>((resolve) => {
      const b = Buffer.alloc(Math.max(4, size));
      b.writeUInt32LE(replySize, 0);
      waiter = resolve;
      writeFrame(sock, b);
    });
    close = () => sock.destroy();
  }
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
  close();
  process.exit(0);
}
