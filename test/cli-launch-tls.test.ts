// `launch --tls` end to end, real processes (scheduler, 2 servers, 2 GPU workers on lavapipe):
// a throwaway CA and per-role certificates are made in the run's directory (keys 0600), every
// link is mutual TLS, and the run trains the same parameters bit for bit as the plain run (BSP,
// hybrid: the ws links and the allreduce's data stream both go through TLS). The plain run says
// its links are unencrypted. Without openssl, --tls fails naming the fix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';
import { runTraining } from '../src/launch/train-run.ts';
import { makeLocalTls } from '../src/launch/tls-certs.ts';
import { loadTls } from '../src/transport/index.ts';
import { tmp, writeRandomCriteo, tinyConfig, readTrainingCheckpoint, maxDiff } from './helpers/train.ts';

const dir = tmp('hps-tls-');
const data = writeRandomCriteo(join(dir, 'train.tsv'), 300, 5);

async function train(name: string, tls: boolean) {
  const lines: string[] = [];
  const out = { write: (s: string) => { lines.push(...s.split('\n')); return true; } } as unknown as NodeJS.WritableStream;
  const cfg = tinyConfig(data, { steps: 3, servers: 2, workers: 2, mode: 'hybrid', checkpointDir: join(dir, name) });
  const s = await runTraining(cfg, { out, tls });
  assert.is(s.steps, 3);
  return { ckpt: await readTrainingCheckpoint(s.checkpoint!, cfg), hashes: s.results.map((r) => r.denseHash), lines };
}

test('launch --tls trains over mutual TLS, bit-identical to the plain run (BSP, hybrid W=2, 2 servers)', async () => {
  const plain = await train('plain', false);
  const tls = await train('tls', true);
  assert.ok(tls.lines.some((l) => /links: mutual TLS, a throwaway CA/.test(l)), tls.lines.join('\n'));
  // Listeners announce wss://, and a role without credentials could not dial one: every link was TLS.
  assert.ok(tls.lines.some((l) => /cluster: scheduler wss:\/\/127\.0\.0\.1:\d+/.test(l)), 'the scheduler listens on wss://');
  assert.ok(plain.lines.some((l) => /links: plain \(unencrypted; --tls for mutual TLS\)/.test(l)), 'a plain run says so, once');
  assert.not.ok(plain.lines.some((l) => /WARN .*links are unencrypted/.test(l)), 'not once per process'); 
  assert.is(maxDiff(plain.ckpt, tls.ckpt), 0, 'the same parameters');
  assert.is(maxDiff(tls.ckpt, plain.ckpt), 0, 'and the same rows');
  assert.equal(tls.hashes, plain.hashes, 'the same dense parameters, bit for bit');
});

test('the run\'s certificates: one per role kind from a fresh CA, keys 0600, each loads', () => {
  const t = makeLocalTls(join(dir, 'certs'));
  for (const role of ['scheduler', 'server', 'worker'] as const) {
    assert.is(statSync(t.roles[role].key).mode & 0o777, 0o600, `${role} key mode`);
    assert.ok(loadTls({ tlsCert: t.roles[role].cert, tlsKey: t.roles[role].key, tlsCa: t.ca }, {}), role);
  }
  assert.is(statSync(join(dir, 'certs', 'ca.key')).mode & 0o777, 0o600);
  assert.is(statSync(join(dir, 'certs')).mode & 0o777, 0o700);
  assert.ok(readdirSync(join(dir, 'certs')).includes('ca.crt'));
});

test('without openssl, --tls fails naming the fix', () => {
  const path = process.env.PATH;
  process.env.PATH = join(dir, 'no-such-bin');
  try {
    assert.throws(() => makeLocalTls(join(dir, 'none')), /needs the openssl command .* apt-get install openssl .* --tls-cert, --tls-key and --tls-ca/);
  } finally { process.env.PATH = path; }
});

test.run();
