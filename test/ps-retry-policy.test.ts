// The client's retry policy reads error classes and codes only: link failures (ConnectError,
// ConnectionClosedError, RequestTimeoutError) and the servers' "the cluster is moving" codes are
// retried, everything else fails at once, whatever its message says. Real links produce those
// classes: a dead address, a link dropped mid-request, a peer that never answers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import {
  Listener, Peer, dial, ConnectError, ConnectionClosedError, RequestTimeoutError, RemoteError, TransportError, errorCodeOf,
} from '../src/transport/index.ts';
import { ErrorCode, Role, WireError } from '../src/wire/codec.ts';
import { UnexpectedReplyError } from '../src/wire/replies.ts';
import { isRetryable, NotInViewError, RETRYABLE_CODES } from '../src/client/retry-policy.ts';
import { SECRET } from './helpers/secret.ts';

const stats = { type: 'statsRequest' } as const;

/** A loopback URL nothing listens on. */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return `ws://127.0.0.1:${port}`;
}

test('link failures and a server gone from the view are retried', () => {
  assert.ok(isRetryable(new ConnectError('ws://x', 'cannot connect to ws://x: ECONNREFUSED')));
  assert.ok(isRetryable(new ConnectionClosedError('connection to s0 closed (1006)')));
  assert.ok(isRetryable(new RequestTimeoutError('pull to s0 timed out after 10 ms')));
  assert.ok(isRetryable(new NotInViewError('server-3', 7)));
  assert.match(new NotInViewError('server-3', 7).message, /server server-3 is not in view 7/);
  // Their codes are what a handler that met them while forwarding answers with.
  assert.is(errorCodeOf(new ConnectError('ws://x', 'x')), ErrorCode.Aborted);
  assert.is(errorCodeOf(new ConnectionClosedError('x')), ErrorCode.Aborted);
  assert.is(errorCodeOf(new RequestTimeoutError('x')), ErrorCode.Timeout);
});

test('remote errors are retried by code only', () => {
  for (const name of Object.keys(ErrorCode).filter((k) => Number.isNaN(Number(k)))) {
    const code = ErrorCode[name as keyof typeof ErrorCode];
    const want = ['WrongOwner', 'StaleEpoch', 'Shutdown', 'Aborted', 'Timeout', 'Fenced'].includes(name); // Fenced: the sender retries under the new view (fencing.ts)
    assert.is(isRetryable(new RemoteError(code, 'could not reach anything', 's0')), want, name);
    assert.is(RETRYABLE_CODES.has(code), want, name);
  }
});

test('messages decide nothing: untyped errors, wire errors and wrong replies are not retried', () => {
  for (const m of ['could not reach ws://x after 4 attempts', 'cannot connect to ws://x', 'server s1 is not in view 3']) {
    assert.not.ok(isRetryable(new Error(m)), m);
  }
  assert.not.ok(isRetryable(new WireError('malformed frame: cannot connect')));
  assert.not.ok(isRetryable(new UnexpectedReplyError('pull', ['pullReply'], 'pushAck', 's0')));
  assert.not.ok(isRetryable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })));
  assert.not.ok(isRetryable('a string'));
  assert.not.ok(isRetryable(undefined));
});

test('real failures: a dead address, a dropped link and a silent peer give retryable transport errors', async () => {
  const url = await deadUrl();
  const direct = await dial(url, { nodeId: 'w0', secret: SECRET, role: Role.Worker }).then(() => null, (e: unknown) => e);
  assert.instance(direct, ConnectError);
  assert.is((direct as ConnectError).url, url);
  const peer = new Peer(url, { nodeId: 'w0', secret: SECRET, role: Role.Worker, connectAttempts: 2, backoffBaseMs: 5 });
  const viaPeer = await peer.request(stats).then(() => null, (e: unknown) => e);
  assert.instance(viaPeer, ConnectError);
  assert.match((viaPeer as Error).message, /could not reach .* after 2 attempts/);
  assert.ok(isRetryable(direct) && isRetryable(viaPeer));
  await peer.close();

  // A peer that drops the link on a pull, and never answers a clock.
  const listener = await Listener.listen({
    nodeId: 'flaky', secret: SECRET,
    onRequest: (env, conn) => {
      if (env.body.type === 'pull') { void conn.close(4000, 'dropped'); return; }
      return new Promise<void>(() => {}); // never answers
    },
  });
  try {
    const { conn } = await dial(listener.url, { nodeId: 'w1', secret: SECRET, role: Role.Worker });
    const slow = await conn.request({ type: 'clock', worker: 0, clock: 1 }, 50).then(() => null, (e: unknown) => e);
    assert.instance(slow, RequestTimeoutError);
    const dropped = await conn.request({ type: 'pull', table: 1, keys: BigUint64Array.of(1n), clock: -1, worker: 0 }).then(() => null, (e: unknown) => e);
    assert.instance(dropped, ConnectionClosedError);
    const after = await conn.request(stats).then(() => null, (e: unknown) => e);
    assert.instance(after, ConnectionClosedError, 'a request on a closed link');
    for (const e of [slow, dropped, after]) { assert.instance(e, TransportError); assert.ok(isRetryable(e)); }
  } finally {
    await listener.close();
  }
});

test.run();
