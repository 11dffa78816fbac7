// The framed link (src/transport/framed-socket.ts, an HTTP upgrade to `hybridps-frames` on the
// listener's port): it carries requests both ways with close codes and reasons, over plain TCP
// and TLS, and a hostile peer gets what it gets over ws: a frame whose header names more than
// the limit is refused from the header (1009) before or after the hello, garbage or a wrong
// opcode before the hello closes the link without reaching a handler, and a peer that trickles
// bytes (a partial upgrade, a partial frame header) is cut off at the hello timeout. The dialling
// end of a plain link reads into a reused scratch or straight into the frame (onread): every
// frame arrives whole and unchanged by the reads after it, however the stream is cut.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { dialFramed } from '../src/transport/framed-upgrade.ts';
import { Listener, dial, FramedSocket, type Connection, type ListenOptions } from '../src/transport/index.ts';
import { encode, Role } from '../src/wire/codec.ts';
import { SECRET } from './helpers/secret.ts';
import { makeTestPki } from './helpers/tls.ts';

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `p`, or a failure naming `what` after 30 s (a hang guard: it returns as soon as `p` settles). */
function guard<T>(p: Promise<T>, what: string): Promise<T> {
  let t!: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 30_000); })]).finally(() => clearTimeout(t));
}

async function counting(opts: Partial<ListenOptions> = {}) {
  const seen = { hellos: 0, requests: 0, refused: [] as string[], conns: [] as Connection[] };
  const listener = await Listener.listen({
    nodeId: 'srv', secret: SECRET, ...opts,
    onHello: () => { seen.hellos++; return { type: 'welcome', nodeId: 'srv', view: null }; },
    onRequest: () => { seen.requests++; return { type: 'statsReply', json: '{"n":1}' } as never; },
    onConnection: (c) => seen.conns.push(c),
    onRejected: (why) => seen.refused.push(why),
  });
  return { listener, seen };
}

/** A raw TCP socket upgraded to hybridps-frames, and everything it has received. */
async function rawFramed(url: string): Promise<{ sock: Socket; got: () => Buffer; closed: Promise<void> }> {
  const u = new URL(url);
  const sock = connect({ host: u.hostname, port: Number(u.port) });
  let got = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => { got = Buffer.concat([got, c]); });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise((r) => sock.once('connect', r));
  sock.write(`GET / HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: hybridps-frames\r\n\r\n`);
  await until('the upgrade and the challenge', () => got.indexOf('\r\n\r\n') > 0 && got.length > got.indexOf('\r\n\r\n') + 4 + 5);
  return { sock, got: () => got, closed };
}

const header = (len: number, op: number) => { const h = Buffer.alloc(5); h.writeUInt32LE(len, 0); h[4] = op; return h; };

/** The close frame's code in what `got` ends with (after the 101 and the challenge), or -1. */
function closeCodeIn(got: Buffer): number {
  let at = got.indexOf('\r\n\r\n') + 4;
  while (at + 5 <= got.length) {
    const len = got.readUInt32LE(at), op = got[at + 4]!;
    if (op === 8 && at + 7 <= got.length) return got.readUInt16BE(at + 5);
    at += 5 + len;
  }
  return -1;
}

test('a framed link carries requests, is a FramedSocket on both ends, and carries close codes and reasons', async () => {
  const { listener, seen } = await counting();
  try {
    const { conn } = await dial(listener.url, { nodeId: 'cli', secret: SECRET, role: Role.Worker, link: 'frames' });
    assert.ok(conn.ws instanceof FramedSocket, 'the dialled link is framed');
    await until('the server side', () => seen.conns.length === 1);
    assert.ok(seen.conns[0]!.ws instanceof FramedSocket, 'the accepted link is framed');
    for (let i = 0; i < 20; i++) assert.is((await conn.request({ type: 'statsRequest' })).body.json, '{"n":1}');
    const ws = await dial(listener.url, { nodeId: 'cli-ws', secret: SECRET, role: Role.Worker, link: 'ws' });
    assert.not.ok(ws.conn.ws instanceof FramedSocket, 'ws links still work on the same port');
    await ws.conn.request({ type: 'statsRequest' });
    await ws.conn.close();
    void conn.close(4005, 'done here');
    assert.equal(await seen.conns[0]!.closed, { code: 4005, reason: 'done here' }, 'the peer sees the code and reason');
    assert.equal(await conn.closed, { code: 4005, reason: 'done here' }, 'the closer sees them echoed');
  } finally { await listener.close(); }
});

test('over TLS the framed link is served as the ws link is (mutual TLS, the HMAC hello on top)', async () => {
  const pki = makeTestPki();
  const { listener, seen } = await counting({ tls: pki.good });
  try {
    const { conn } = await dial(listener.url, { nodeId: 'cli', secret: SECRET, role: Role.Worker, tls: pki.good, link: 'frames' });
    assert.ok(conn.ws instanceof FramedSocket);
    assert.is((await conn.request({ type: 'statsRequest' })).body.json, '{"n":1}');
    await conn.close();
    const wrong = await dial(listener.url, { nodeId: 'evil', secret: SECRET, role: Role.Worker, tls: pki.fromOtherCa, link: 'frames' }).then(() => null, (e: Error) => e);
    assert.ok(wrong, 'a certificate from another CA is refused');
    assert.is(seen.hellos, 1, 'only the good peer said hello');
  } finally { await listener.close(); pki.remove(); }
});

test('a frame whose header names more than the limit closes with 1009, from the header alone, and the listener serves on', async () => {
  const { listener, seen } = await counting({ maxFrameBytes: 1 << 16 });
  try {
    // After the hello: a 12 MB request (more than the socket buffers hold, so the sender is still
    // writing when the refusal comes: the refusing end must drop the rest for the close to finish).
    const { conn } = await dial(listener.url, { nodeId: 'big', secret: SECRET, role: Role.Worker, link: 'frames' });
    const err = await conn.request({ type: 'push', table: 1, keys: new BigUint64Array(1e6), values: new Float32Array(1e6), worker: 0, clock: 0, seq: 1 }).then(() => null, (e: Error) => e);
    assert.ok(err, 'the oversized request fails');
    assert.is((await guard(conn.closed, 'the oversized request to close the link')).code, 1009);
    assert.is(seen.requests, 0, 'it reached no handler');
    // Before the hello: a bare header naming 5000 bytes (over the 4096 pre-auth limit), no payload.
    const raw = await rawFramed(listener.url);
    raw.sock.write(header(5000, 2));
    await guard(raw.closed, 'the oversized pre-auth frame to close the link');
    assert.is(closeCodeIn(raw.got()), 1009, 'a close frame with 1009 came back');
    // After the hello, a bare header naming 1 GiB: refused without waiting for a byte of it.
    const { conn: c2 } = await dial(listener.url, { nodeId: 'huge', secret: SECRET, role: Role.Worker, link: 'frames' });
    (c2.ws as FramedSocket).socket.write(header(1 << 30, 2));
    assert.is((await guard(c2.closed, 'a bare 1 GiB header to close the link')).code, 1009);
    const { conn: ok } = await dial(listener.url, { nodeId: 'ok', secret: SECRET, role: Role.Worker, link: 'frames' });
    assert.is((await ok.request({ type: 'statsRequest' })).body.json, '{"n":1}', 'still serving');
    await ok.close();
  } finally { await listener.close(); }
});

test('garbage or a bad opcode before the hello is refused and reaches no handler', async () => {
  const { listener, seen } = await counting();
  try {
    const garbage = await rawFramed(listener.url);
    garbage.sock.write(Buffer.concat([header(11, 2), Buffer.from('not a hello')]));
    await guard(garbage.closed, 'garbage to close the link');
    assert.is(closeCodeIn(garbage.got()), 4001, 'closed as unauthenticated');
    const badOp = await rawFramed(listener.url);
    badOp.sock.write(Buffer.concat([header(3, 77), Buffer.from('abc')]));
    await guard(badOp.closed, 'a bad opcode to close the link');
    assert.is(closeCodeIn(badOp.got()), 1002, 'closed as a protocol error');
    assert.is(seen.hellos + seen.requests, 0);
    assert.ok(seen.refused.some((r) => /not a valid hello/.test(r)), seen.refused.join('; '));
  } finally { await listener.close(); }
});

test('a peer that trickles a partial upgrade or a partial frame header is cut off at the hello timeout', async () => {
  const { listener, seen } = await counting({ helloTimeoutMs: 300 });
  try {
    const header3 = await rawFramed(listener.url);
    header3.sock.write(header(100, 2).subarray(0, 3));
    const u = new URL(listener.url);
    const partial = connect({ host: u.hostname, port: Number(u.port) });
    partial.on('error', () => {});
    const partialClosed = new Promise((r) => partial.once('close', r));
    partial.write('GET / HTTP/1.1\r\nUpgrade: hybridps-fr');
    await guard(header3.closed, 'the hello timeout (partial header)');
    await guard(partialClosed, 'the hello timeout (partial upgrade)');
    assert.is(listener.stats.helloTimeouts, 2);
    assert.is(listener.pendingHellos, 0);
    assert.is(seen.hellos, 0);
  } finally { await listener.close(); }
});

test('a peer that floods requests, reads no reply and hangs up gets none of the waiting replies built', async () => {
  const big = 'x'.repeat(4 << 20); // more than loopback's socket buffers take in one or two replies
  let server!: Connection;
  const listener = await Listener.listen({
    nodeId: 'srv', secret: SECRET, maxInFlight: 16, sendHighWaterBytes: 64 << 10,
    onRequest: () => ({ type: 'statsReply', json: big }) as never, onConnection: (c) => { server = c; },
  });
  try {
    const { conn } = await dial(listener.url, { nodeId: 'deaf', secret: SECRET, role: Role.Worker, link: 'frames' });
    conn.ws.removeAllListeners('message');
    conn.ws.pause();
    await until('the server side', () => !!server);
    for (let i = 1; i <= 16; i++) conn.ws.send(encode({ requestId: i, reply: false, sender: 'deaf', epoch: 0, body: { type: 'statsRequest' } }));
    await until('every request in, most replies waiting for the socket', () => server.stats.receivedFrames === 16 && server.stats.inFlight >= 8);
    const sentBefore = server.stats.sentFrames;
    conn.ws.terminate();
    await guard(server.closed, 'the server to see the hang-up');
    assert.ok(server.stats.sentFrames - sentBefore <= 2, `${server.stats.sentFrames - sentBefore} replies were built after the peer hung up`);
  } finally { await listener.close(); }
});

test('the dialling end delivers every frame whole and unchanged by later reads, however the stream is cut', async () => {
  const sizes = [0, 1, 5, 100, 4095, 4096, 16383, 16384, 16385, 65535, 65536, 65537, 70000, 3_000_000, 7, 1_000_000, 2, 200_000, 3];
  const payload = (i: number, n: number) => { const b = Buffer.allocUnsafe(n); for (let k = 0; k < n; k++) b[k] = (i * 31 + k * 7) & 255; return b; };
  const stream = Buffer.concat(sizes.flatMap((n, i) => [header(n, 2), payload(i, n)]));
  let seed = 12345;
  const rand = (m: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return 1 + (seed % m); };
  const server = createServer((sock) => {
    let req = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      req = Buffer.concat([req, c]);
      if (req.indexOf('\r\n\r\n') < 0) return;
      sock.removeAllListeners('data');
      // The 101 and the first bytes of the frames in one write (they arrive with the response), then pieces.
      let at = 3;
      sock.write(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: hybridps-frames\r\nConnection: Upgrade\r\n\r\n'), stream.subarray(0, at)]));
      const next = () => {
        if (at >= stream.length) return;
        const n = Math.min(stream.length - at, rand(at < 200_000 ? 9 : 150_000));
        const ok = sock.write(stream.subarray(at, at + n));
        at += n;
        if (ok) setImmediate(next); else sock.once('drain', next);
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const link = dialFramed(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, undefined, 8 << 20);
  const got: Buffer[] = [];
  link.on('message', (m: Buffer) => got.push(m));
  link.on('error', () => {});
  try {
    await until('every frame', () => got.length === sizes.length);
    sizes.forEach((n, i) => assert.ok(got[i]!.equals(payload(i, n)), `frame ${i} (${n} bytes) arrived whole and unchanged`));
  } finally { link.terminate(); server.close(); }
});

test.run();
