// The per-connection limits, counted rather than timed: no more than maxInFlight frames (requests,
// notifications, malformed frames) are handled at once, the socket is not read meanwhile, every
// frame is still answered in order once handlers finish, and an outside hold (the allreduce's
// early-chunk cap) keeps reading stopped whatever the in-flight count does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Listener, dial, limitsFromFlags, type Connection } from '../src/transport/index.ts';
import { resolveLimits, DEFAULT_LIMITS } from '../src/transport/limits.ts';
import { encode, decode, Role, type Envelope } from '../src/wire/codec.ts';
import { SECRET } from './helpers/secret.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('limits: flags map to bytes, defaults fill in, nonsense is refused naming the limit', () => {
  assert.equal(limitsFromFlags({ maxFrameMb: 2, preAuthMaxBytes: 512, maxInFlight: 8, maxInFlightMb: 3, sendHighWaterMb: 1, helloTimeoutMs: 900, maxUnauthenticated: 5 }), {
    maxFrameBytes: 2 << 20, preAuthMaxFrameBytes: 512, maxUnauthenticated: 5, helloTimeoutMs: 900, maxInFlight: 8, maxInFlightBytes: 3 << 20, sendHighWaterBytes: 1 << 20,
  });
  assert.equal(resolveLimits({}), DEFAULT_LIMITS);
  assert.is(resolveLimits({ maxInFlight: 3 }).maxInFlight, 3);
  assert.throws(() => resolveLimits({ maxInFlight: 0 }), /maxInFlight must be a positive integer/);
});

async function pair(maxInFlight: number, onRequest: (env: Envelope, conn: Connection) => unknown) {
  let server!: Connection;
  const listener = await Listener.listen({ nodeId: 'srv', secret: SECRET, maxInFlight, onRequest: onRequest as never, onConnection: (c) => { server = c; } });
  const { conn } = await dial(listener.url, { nodeId: 'cli', secret: SECRET, role: Role.Worker });
  while (!server) await sleep(5);
  const answers: Envelope[] = [];
  conn.ws.removeAllListeners('message');
  conn.ws.on('message', (d: Buffer) => answers.push(decode(d)));
  return { listener, server, client: conn, answers };
}

test('at maxInFlight requests, malformed frames included, nothing more is handled until one finishes; all are answered in order', async () => {
  const gates: (() => void)[] = [];
  let peak = 0;
  const { listener, server, client, answers } = await pair(4, (env, conn) => {
    peak = Math.max(peak, conn.stats.inFlight);
    return new Promise((resolve) => gates.push(() => resolve({ type: 'pushAck', seq: env.requestId, applied: true })));
  });
  for (let i = 1; i <= 30; i++) {
    client.ws.send(i % 3 === 0 ? Uint8Array.of(9, 9, 9) : encode({ requestId: i, reply: false, sender: 'cli', epoch: 0, body: { type: 'statsRequest' } }));
  }
  // Until 4 are in flight and reading has paused (at once, but later on a busy machine), then a
  // moment in which nothing more may start.
  for (const end = Date.now() + 30_000; !(server.stats.inFlight === 4 && server.stats.readPauses >= 1) && Date.now() < end;) await sleep(10);
  await sleep(100);
  assert.is(server.stats.inFlight, 4, 'handled at once');
  assert.ok(server.stats.readPauses >= 1, 'reading stopped at the limit');
  assert.ok(peak <= 4, `peak in flight ${peak}`);
  while (answers.length < 30) {
    gates.splice(0).forEach((g) => g());
    await sleep(20);
    assert.ok(server.stats.inFlight <= 4, `in flight ${server.stats.inFlight}`);
  }
  const acks = answers.filter((a) => a.body.type === 'pushAck').map((a) => a.requestId);
  assert.equal(acks, Array.from({ length: 30 }, (_, i) => i + 1).filter((i) => i % 3 !== 0), 'every request answered, in order');
  assert.is(answers.filter((a) => a.body.type === 'error').length, 10, 'every malformed frame answered');
  await client.close();
  await listener.close();
});

test('an outside hold keeps the socket unread while the in-flight count comes and goes', async () => {
  const { listener, server, client, answers } = await pair(2, () => ({ type: 'ok' }));
  server.holdReading();
  await sleep(20);
  for (let i = 1; i <= 10; i++) client.ws.send(encode({ requestId: i, reply: false, sender: 'cli', epoch: 0, body: { type: 'statsRequest' } }));
  await sleep(200);
  assert.ok(answers.length <= 2, `answered ${answers.length} while held`); // ws may have read a little before the pause
  server.releaseReading();
  while (answers.length < 10) await sleep(10);
  assert.equal(answers.map((a) => a.requestId), Array.from({ length: 10 }, (_, i) => i + 1));
  await client.close();
  await listener.close();
});

test.run();
