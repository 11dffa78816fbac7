// Child process for the ASP test: pushes +1 to the same keys many times, concurrently.
import { PSClient } from '../../src/client/ps-client.ts';
import { SECRET, table } from './cluster.ts';
import { Consistency } from '../../src/wire/codec.ts';

const client = await PSClient.connect({ secret: SECRET, schedulerUrl: process.env.SCHEDULER!, nodeId: process.env.NODE_ID });
await client.waitForView((v) => v.servers.length > 0);
const dim = 4, nkeys = Number(process.env.NKEYS), rounds = Number(process.env.ROUNDS);
await client.declareTables([table({ id: 4, dim, consistency: Consistency.ASP, optimizer: 'sgd', hyper: { lr: -1 } })]);
const keys = BigUint64Array.from({ length: nkeys }, (_, i) => BigInt(i * 7919));
const ones = new Float32Array(nkeys * dim).fill(1);
// Several pushes in flight at once, like a worker overlapping steps.
for (let r = 0; r < rounds; r += 4) {
  await Promise.all(Array.from({ length: Math.min(4, rounds - r) }, () => client.push(4, keys, ones)));
}
await client.close();
process.exit(0);
