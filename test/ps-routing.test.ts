// Ownership on the servers: a pull or push of a key this server does not head is refused with
// WrongOwner naming the owner, and changes nothing, with one copy per key (R = 1) and with chains
// (R = 2, where only the chain's head takes a worker's request). The client routes around it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, table, SECRET } from './helpers/cluster.ts';
import { dial, RemoteError } from '../src/transport/index.ts';
import { ErrorCode, Role } from '../src/wire/codec.ts';
import type { RequestBody } from '../src/wire/replies.ts';

for (const replicas of [1, 2]) {
  test(`R=${replicas}: a key sent to a server that does not head it is refused (WrongOwner) and nothing changes`, async () => {
    const c = await startCluster({ servers: 3, replicas });
    try {
      const client = await c.client('w');
      await client.declareTables([table({ id: 1, dim: 4, init: 'uniform', initScale: 1, optimizer: 'sgd', hyper: { lr: 1 } })]);
      const view = client.view;
      // Find a key that server-0 does not head, and one it does.
      let foreign = -1, own = -1;
      for (let k = 0; foreign < 0 || own < 0; k++) {
        const head = view.chainOf(1, k, 0)[0]!.nodeId;
        if (head === 'server-0') own = own < 0 ? k : own;
        else foreign = foreign < 0 ? k : foreign;
      }
      const owner = view.chainOf(1, foreign, 0)[0]!.nodeId;
      const keys = BigUint64Array.from([BigInt(own), BigInt(foreign)]);
      const before = await client.pull(1, keys); // routed: each key to its head
      const { conn } = await dial(c.servers[0]!.url, { nodeId: 'raw', secret: SECRET, role: Role.Worker, epoch: () => view.epoch });
      const refused = async (body: RequestBody) => {
        try {
          await conn.request(body);
          assert.unreachable(`${body.type} of key ${foreign} to server-0 should be refused`);
        } catch (e) {
          assert.instance(e, RemoteError);
          assert.is(ErrorCode[(e as RemoteError).code], 'WrongOwner', (e as Error).message);
          assert.match((e as Error).message, new RegExp(`key ${foreign} of table 1 belongs to ${owner} in view \\d+, not server-0`));
        }
      };
      await refused({ type: 'pull', table: 1, keys, clock: -1, worker: 0 });
      await refused({ type: 'push', table: 1, keys, values: new Float32Array(8).fill(1), worker: 0, clock: 0, seq: 99 });
      assert.equal(Array.from(await client.pull(1, keys)), Array.from(before), 'the refused push changed nothing');
      // The key server-0 heads alone is served.
      const mine = await conn.request({ type: 'pull', table: 1, keys: keys.subarray(0, 1), clock: -1, worker: 0 });
      assert.is(mine.body.type, 'pullReply');
      await conn.close();
    } finally { await c.close(); }
  });
}

test.run();
