// The wire floor for the step benchmark: how long ONE raw loopback TCP stream (net.Socket, no
// WebSocket, no FlatBuffers, no table) takes to carry a step's pull and push bytes. A server
// process answers each request with a reply of the size the request names; a client process
// sends a step's pull (all its keys out, all its rows back) and push (keys and rows out, an ack
// back) as two round trips, repeatedly, and prints the median. The step benchmark's worker runs
// the client part in its own process (FloorClient), in blocks between its timed data-path steps.
//
//   server:  node --import tsx bench/raw-tcp-floor.ts server
//            prints "HYBRIDPS_READY {"port":N}"; exits when its stdin closes (its parent went away)
//   client:  node --import tsx bench/raw-tcp-floor.ts client PORT PULL_REQ PULL_REPLY PUSH_REQ ROUNDS WARMUP
//            prints one JSON line {"ms", "pullMs", "pushMs", "rounds"} (medians over the rounds)
//
// Framing: an 8-byte header [u32 payload bytes][u32 reply bytes], then the payload.
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

const HEADER = 8;
const ACK = 16;

function serve(): void {
  const replies = new Map<number, Buffer>();
  const server = createServer((sock) => {
    sock.setNoDelay(true);
    let header = Buffer.alloc(0);
    let left = -1, reply = 0;
    sock.on('data', (chunk: Buffer) => {
      let at = 0;
      while (at < chunk.length) {
        if (left < 0) { // reading a header, possibly split across chunks
          const take = Math.min(HEADER - header.length, chunk.length - at);
          header = Buffer.concat([header, chunk.subarray(at, at + take)]);
          at += take;
          if (header.length < HEADER) return;
          left = header.readUInt32LE(0);
          reply = header.readUInt32LE(4);
          header = Buffer.alloc(0);
        }
        const take = Math.min(left, chunk.length - at);
        left -= take;
        at += take;
        if (left === 0) {
          let r = replies.get(reply);
          if (!r) replies.set(reply, (r = Buffer.alloc(reply)));
          sock.write(r);
          left = -1;
        }
      }
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`HYBRIDPS_READY ${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

/** Sends `payload` bytes after a header naming `reply`, resolves when `reply` bytes came back. */
function roundTrip(sock: Socket, msg: Buffer, reply: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (c: Buffer) => {
      got += c.length;
      if (got >= reply) { sock.off('data', onData); sock.off('error', reject); resolve(); }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.write(msg);
  });
}

function frame(payload: number, reply: number): Buffer {
  const b = Buffer.alloc(HEADER + payload, 1);
  b.writeUInt32LE(payload, 0);
  b.writeUInt32LE(reply, 4);
  return b;
}

const median = (v: number[]) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

export interface FloorResult { ms: number; pullMs: number; pushMs: number; rounds: number }

/** One connection to a floor server, kept open across blocks of rounds; times each round. */
export class FloorClient {
  /** Every timed round: the pull's and the push's milliseconds. */
  readonly rounds: { pullMs: number; pushMs: number }[] = [];
  private frames = new Map<string, Buffer>();

  private constructor(private readonly sock: Socket) {}

  static async connect(port: number): Promise<FloorClient> {
    const sock = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    sock.setNoDelay(true);
    return new FloorClient(sock);
  }

  /**
   * The frame for these sizes, made once: a round uses two (its pull and its push), and a
   * block's rounds all use the same two. Keeping only one made every round allocate and fill
   * both (~12 MB at the gpu preset) inside its timed part, so the floor included that work.
   */
  private frame(payload: number, reply: number): Buffer {
    const k = `${payload}/${reply}`;
    let f = this.frames.get(k);
    if (!f) {
      if (this.frames.size >= 4) this.frames.clear(); // a new block's sizes: the old frames are not sent again
      this.frames.set(k, (f = frame(payload, reply)));
    }
    return f;
  }

  /**
   * One step's traffic: a pull (pullReq bytes out, pullReply back) then a push (pushReq out, an
   * ack back). Byte counts are rounded to whole bytes (callers pass per-step means). Timed rounds
   * are kept in `rounds`.
   */
  async round(pullReq: number, pullReply: number, pushReq: number, timed = true): Promise<void> {
    [pullReq, pullReply, pushReq] = [pullReq, pullReply, pushReq].map((b) => Math.max(1, Math.round(b))) as [number, number, number];
    const pull = this.frame(pullReq, pullReply), push = this.frame(pushReq, ACK); // made outside the timed part
    const t0 = performance.now();
    await roundTrip(this.sock, pull, pullReply);
    const t1 = performance.now();
    await roundTrip(this.sock, push, ACK);
    if (timed) this.rounds.push({ pullMs: t1 - t0, pushMs: performance.now() - t1 });
  }

  /** Medians over the timed rounds. */
  result(): FloorResult {
    return {
      ms: median(this.rounds.map((r) => r.pullMs + r.pushMs)), pullMs: median(this.rounds.map((r) => r.pullMs)),
      pushMs: median(this.rounds.map((r) => r.pushMs)), rounds: this.rounds.length,
    };
  }

  close(): void { this.sock.destroy(); }
}

/** `rounds` timed rounds after `warmup` untimed ones on a fresh connection (the command-line client). */
export async function measureFloor(port: number, pullReq: number, pullReply: number, pushReq: number, rounds: number, warmup: number): Promise<FloorResult> {
  const c = await FloorClient.connect(port);
  try {
    for (let i = 0; i < warmup + rounds; i++) await c.round(pullReq, pullReply, pushReq, i >= warmup);
    return c.result();
  } finally {
    c.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'server') serve();
  else if (process.argv[2] === 'client') {
    const [port, pullReq, pullReply, pushReq, rounds, warmup] = process.argv.slice(3).map(Number) as [number, number, number, number, number, number];
    process.stdout.write(JSON.stringify(await measureFloor(port, pullReq, pullReply, pushReq, rounds, warmup)) + '\n');
    process.exit(0);
  } else { process.stderr.write('usage: raw-tcp-floor.ts server | client PORT PULL_REQ PULL_REPLY PUSH_REQ ROUNDS WARMUP\n'); process.exit(2); }
}
