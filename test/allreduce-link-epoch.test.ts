// The ring epoch a control link serves travels in the hello's own field (ring_epoch), not in the
// address: the ring's listener learns it from there and closes links of older rings when a new
// ring is installed; the control link carries no data, so a chunk sent on it is refused (segments
// travel on the data stream: test/allreduce-data-stream.test.ts). In one process, with raw links.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Listener, dial, type Connection } from '../src/transport/index.ts';
import { Role } from '../src/wire/codec.ts';
import { RingAllreduce } from '../src/allreduce/index.ts';
import { SECRET } from './helpers/secret.ts';

// A hang guard: the conditions normally hold within milliseconds.
async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the hello carries the ring epoch: old-ring links are closed, chunks on the control link refused, the right link announces its ring', async () => {
  const ring = await RingAllreduce.create({ nodeId: 'worker-a', secret: SECRET, timeoutMs: 5_000 });
  // The right neighbour: a plain listener that records what the ring's link announced.
  const inbound: Connection[] = [];
  const right = await Listener.listen({ nodeId: 'worker-x', secret: SECRET, onRequest: () => {}, onConnection: (c) => inbound.push(c) });
  const link = (ringEpoch: number) => dial(ring.url, { nodeId: 'worker-x', secret: SECRET, role: Role.Worker, address: right.url, ringEpoch });
  try {
    const old = await link(1);
    const cur = await link(2);
    ring.setRing([{ nodeId: 'worker-a', address: ring.url }, { nodeId: 'worker-x', address: right.url }], 2);
    const closed = await old.conn.closed;
    assert.is(closed.code, 4000, `the epoch-1 link is closed by the new ring (${closed.code} ${closed.reason})`);
    assert.ok(cur.conn.isOpen, 'the epoch-2 link stays');

    await cur.conn.notify({ type: 'allreduceChunk', opId: 0, ringEpoch: 5, step: 0, segment: 0, offset: 0, values: new Float32Array(4) });
    await until('the chunk on the control link to be refused', () => ring.stats.rejectedMessages === 1);

    await until('the ring to dial its right neighbour', () => inbound.length === 1);
    assert.is(inbound[0]!.peerId, 'worker-a');
    assert.is(inbound[0]!.peerRingEpoch, 2, 'the link names its ring in the hello');
    assert.is(inbound[0]!.peerAddress, ring.url, 'the address is the plain listener URL');
    await cur.conn.close();
  } finally {
    await ring.close();
    await right.close();
  }
});

test.run();
