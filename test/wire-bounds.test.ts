// The verifier's budget: a frame may describe no more than its own bytes. Offsets that point many
// entries of a vector at one table or string (a small frame describing N x M objects) are refused
// with a WireError naming the aliasing, for every shape the schema allows; honest frames, however
// many tables and strings they hold, pass. (A frame may alias within the slack its own padding
// and vtables leave: harmless, as what it describes still fits in its bytes.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, decode, WireError, Consistency, Role, type TableSpecMsg } from '../src/wire/codec.ts';
import { aliasedCheckpointReply, aliasedClusterView, aliasedCopyPending, aliasedDeclareTables, pushSharingKeysAndValues } from './helpers/hostile-frames.ts';

function refused(frame: Uint8Array, what: string): WireError {
  try {
    const env = decode(frame);
    throw new Error(`${what}: a ${frame.length}-byte aliased frame was accepted as ${env.body.type}`);
  } catch (e) {
    assert.instance(e, WireError, `${what}: ${(e as Error).message}`);
    assert.match((e as Error).message, /aliased offsets/, what);
    return e as WireError;
  }
}

test('aliased table vectors are refused: DeclareTables N x M, ClusterView members, CopyPending applied', () => {
  // Today's sizes are smaller than the attack's (13 000 x 13 000) so a decoder without a budget
  // finishes this test in seconds rather than minutes; the frame is still far smaller than its sum.
  refused(aliasedDeclareTables(2000, 2000), 'DeclareTables 2000 x 2000');
  refused(aliasedDeclareTables(13_000, 13_000), 'DeclareTables 13000 x 13000');
  refused(aliasedClusterView(4000, 1000), 'ClusterView of 4000 aliases of a 1000-byte member');
  refused(aliasedCopyPending(4000, 256), 'CopyPending with 4000 aliases of one AppliedPush');
});

test('aliased strings and vectors are refused: CheckpointReply files, two fields sharing bytes', () => {
  refused(aliasedCheckpointReply(4000, 1000), 'CheckpointReply of 4000 aliases of one name');
  refused(pushSharingKeysAndValues(), 'push whose keys and values are one vector');
});

test('honest frames with many distinct small tables and strings pass', () => {
  const spec = (id: number): TableSpecMsg => ({
    id, name: `table-${id}`, dim: 8, init: 'uniform', initScale: 0.1, seed: BigInt(id), optimizer: 'adagrad',
    hyper: Object.fromEntries(Array.from({ length: 20 }, (_, j) => [`h${j}`, j / 7])), consistency: Consistency.SSP, staleness: 2,
  });
  const tables = Array.from({ length: 2000 }, (_, i) => spec(i));
  const env = decode(encode({ requestId: 1, reply: false, sender: 'w', epoch: 1, body: { type: 'declareTables', tables, workers: 3 } }));
  assert.ok(env.body.type === 'declareTables' && env.body.tables.length === 2000 && Object.keys(env.body.tables[1999]!.hyper).length === 20);
  const members = Array.from({ length: 5000 }, (_, i) => ({ nodeId: `worker-${i}`, role: Role.Worker, address: `ws://127.0.0.1:${i}`, rank: i }));
  const view = decode(encode({ requestId: 1, reply: false, sender: 's', epoch: 1, body: { type: 'clusterView', view: { epoch: 3, members, vnodes: 64, replicas: 1 } } }));
  assert.ok(view.body.type === 'clusterView' && view.body.view.members[4999]!.address === 'ws://127.0.0.1:4999');
  const files = Array.from({ length: 3000 }, (_, i) => `part-${i}.safetensors`);
  const ck = decode(encode({ requestId: 1, reply: true, sender: 's', epoch: 1, body: { type: 'checkpointReply', files, rows: 9 } }));
  assert.equal(ck.body.type === 'checkpointReply' && ck.body.files, files);
});

test.run();
