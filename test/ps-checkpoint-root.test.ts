// The checkpoint-path sandbox: a peer names checkpoint directories, and a server only writes and
// reads inside its checkpoint root (the root itself, or below it; `..`, absolute paths elsewhere
// and a sibling sharing the root's prefix are refused with Unsupported, and nothing is written).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { checkpointDir } from '../src/server/checkpointing.ts';
import { RpcError, RemoteError } from '../src/transport/index.ts';
import { ErrorCode } from '../src/wire/codec.ts';
import { startCluster, table } from './helpers/cluster.ts';

test('checkpointDir keeps paths inside the root', () => {
  const root = resolve(tmpdir(), 'hps-root');
  assert.is(checkpointDir('ckpt', root), join(root, 'ckpt'));
  assert.is(checkpointDir('a/../b', root), join(root, 'b'));
  assert.is(checkpointDir('.', root), root);
  assert.is(checkpointDir(join(root, 'x'), root), join(root, 'x'), 'an absolute path inside is fine');
  for (const bad of ['..', '../hps-root-evil', '/etc', `${root}-evil/x`, 'a/../../x']) {
    try {
      checkpointDir(bad, root);
      assert.unreachable(`${bad} should be refused`);
    } catch (e) {
      assert.instance(e, RpcError);
      assert.is((e as RpcError).code, ErrorCode.Unsupported);
      assert.match((e as Error).message, /is outside the server's checkpoint root/);
    }
  }
});

test('a checkpoint request naming a directory outside the root is refused and writes nothing', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const w = await c.client('w');
    await w.declareTables([table({ id: 1, dim: 2 })]);
    const outside = join(c.checkpointRoot, '..', `escape-${process.pid}`);
    const err = await w.checkpoint(outside, 1).then(() => null, (e: Error) => e);
    assert.instance(err, RemoteError);
    assert.is((err as RemoteError).code, ErrorCode.Unsupported);
    assert.ok(!existsSync(outside), 'nothing written outside the root');
    assert.is((await w.checkpoint(join(c.checkpointRoot, 'in'), 1)).length, 1, 'inside is fine');
  } finally { await c.close(); }
});

test.run();
