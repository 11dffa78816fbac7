// Typed replies: every request kind has its reply kinds (REPLY_OF), and a real peer that answers
// with another kind makes `request` reject with UnexpectedReplyError naming the request, the
// expected and the received kind, instead of handing the caller the wrong fields. Error replies
// stay RemoteErrors; the link keeps working after a wrong reply.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Listener, dial, RemoteError, RpcError } from '../src/transport/index.ts';
import { ErrorCode, Role, type Body, type BodyType } from '../src/wire/codec.ts';
import { REPLY_OF, UnexpectedReplyError, replyTypesOf } from '../src/wire/replies.ts';
import { SECRET } from './helpers/secret.ts';

const pull = { type: 'pull', table: 1, keys: BigUint64Array.of(1n, 2n), clock: -1, worker: 0 } as const;

test('the reply map: each request kind gets its reply kind(s)', () => {
  const want: Partial<Record<BodyType, BodyType[]>> = {
    hello: ['welcome'], pull: ['pullReply'], push: ['pushAck'], replicaPush: ['pushAck'], pullBatch: ['pullBatchReply'], pushBatch: ['pushBatchAck'], clock: ['clockAck'],
    statsRequest: ['statsReply'], checkpoint: ['checkpointReply'], restore: ['checkpointReply'],
    declareTables: ['declareTablesReply'], barrier: ['barrierRelease'], copyRows: ['ok'], copyPending: ['ok'],
    heartbeat: ['ok'], leave: ['ok'], assignRows: ['ok'], handoffMetaRequest: ['handoffMeta'], handoffRequest: ['copyRows'],
    readRows: ['copyRows'],
  };
  assert.equal(Object.fromEntries(Object.entries(REPLY_OF).map(([k, v]) => [k, [...v]])), want);
  assert.equal(replyTypesOf('pullReply'), [], 'a reply is not a request');
});

test('a peer that answers a pull with the wrong kind makes request reject with UnexpectedReplyError', async () => {
  // A real listener whose handler answers every pull with a pushAck, and statsRequest correctly.
  const listener = await Listener.listen({
    nodeId: 'liar', secret: SECRET,
    onRequest: (env): Body => {
      if (env.body.type === 'pull') return { type: 'pushAck', seq: 1, applied: true };
      if (env.body.type === 'statsRequest') return { type: 'statsReply', json: '{"ok":true}' };
      throw new RpcError(ErrorCode.Unsupported, `no ${env.body.type} here`);
    },
  });
  const { conn } = await dial(listener.url, { nodeId: 'w0', secret: SECRET, role: Role.Worker });
  try {
    const err = await conn.request(pull).then(() => null, (e: unknown) => e);
    assert.instance(err, UnexpectedReplyError);
    const e = err as UnexpectedReplyError;
    assert.is(e.request, 'pull');
    assert.equal([...e.expected], ['pullReply']);
    assert.is(e.received, 'pushAck');
    assert.is(e.code, ErrorCode.Malformed);
    assert.match(e.message, /liar answered pull with pushAck; pull is answered with pullReply/);
    // The link is still good, a right reply resolves, and an error reply is still a RemoteError.
    const stats = await conn.request({ type: 'statsRequest' });
    assert.is(stats.body.json, '{"ok":true}');
    const refused = await conn.request({ type: 'clock', worker: 0, clock: 1 }).then(() => null, (x: unknown) => x);
    assert.instance(refused, RemoteError);
    assert.is((refused as RemoteError).code, ErrorCode.Unsupported);
    // `expect` narrows a request with several reply kinds; the other kind is then unexpected.
    const handoff = await conn.request({ type: 'handoffRequest', table: 1, offset: 0, limit: 1 }, undefined, 'copyRows').then(() => null, (x: unknown) => x);
    assert.instance(handoff, RemoteError, 'the handler refused it: an error reply stays an error');
  } finally {
    await conn.close();
    await listener.close();
  }
});

test('handoff requests answered with another kind (the old JSON statsReply) are refused', async () => {
  const listener = await Listener.listen({ nodeId: 'meta', secret: SECRET, onRequest: (): Body => ({ type: 'statsReply', json: '{}' }) });
  const { conn } = await dial(listener.url, { nodeId: 's1', secret: SECRET, role: Role.Server });
  try {
    const meta = await conn.request({ type: 'handoffMetaRequest' }).then(() => null, (x: unknown) => x);
    assert.instance(meta, UnexpectedReplyError);
    assert.equal([...(meta as UnexpectedReplyError).expected], ['handoffMeta']);
    assert.is((meta as UnexpectedReplyError).received, 'statsReply');
    const err = await conn.request({ type: 'handoffRequest', table: 1, offset: 0, limit: 8 }).then(() => null, (x: unknown) => x);
    assert.instance(err, UnexpectedReplyError);
    assert.equal([...(err as UnexpectedReplyError).expected], ['copyRows']);
    assert.is((err as UnexpectedReplyError).received, 'statsReply');
  } finally {
    await conn.close();
    await listener.close();
  }
});

test('a hello answered with something other than a welcome fails the dial with UnexpectedReplyError', async () => {
  const listener = await Listener.listen({ nodeId: 'odd', secret: SECRET, onHello: (): Body => ({ type: 'ok' }), onRequest: () => {} });
  try {
    const err = await dial(listener.url, { nodeId: 'w0', secret: SECRET, role: Role.Worker }).then(() => null, (x: unknown) => x);
    assert.instance(err, UnexpectedReplyError);
    assert.is((err as UnexpectedReplyError).request, 'hello');
    assert.is((err as UnexpectedReplyError).received, 'ok');
  } finally {
    await listener.close();
  }
});

test.run();
