// Mutual TLS on the ws links (docs/operations.md, "Encrypted links"), with real listeners and
// certificates made by openssl: a peer with the cluster's credentials is served (wss://, the HMAC
// hello on top); one with a certificate from another CA, an expired one, one without the cluster
// name, none at all, or plain ws, is refused in the TLS handshake or at the upgrade: no hello and
// no request reaches the handlers. The dialler refuses a listener it cannot verify, and a file
// that cannot work fails loadTls with its name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Listener, dial, loadTls, type TlsCredentials } from '../src/transport/index.ts';
import { Role } from '../src/wire/codec.ts';
import { SECRET } from './helpers/secret.ts';
import { makeTestPki } from './helpers/tls.ts';

const pki = makeTestPki();

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A TLS listener that counts every hello and request reaching it, and what it refused. */
async function countingListener(tls: TlsCredentials = pki.good) {
  const seen = { hellos: 0, requests: 0, refused: [] as string[] };
  const listener = await Listener.listen({
    nodeId: 'srv', secret: SECRET, tls,
    onHello: () => { seen.hellos++; return { type: 'welcome', nodeId: 'srv', view: null }; },
    onRequest: () => { seen.requests++; return { type: 'statsReply', json: '{}' } as never; },
    onRejected: (why) => seen.refused.push(why),
  });
  return { listener, seen };
}

test('a peer with the cluster CA\'s certificate is served over wss://, the HMAC hello on top', async () => {
  const { listener, seen } = await countingListener();
  try {
    assert.match(listener.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    // A ws:// address (as TF_CONFIG gives) is dialled as wss:// when the node has credentials.
    const { conn } = await dial(listener.url.replace('wss://', 'ws://'), { nodeId: 'cli', secret: SECRET, role: Role.Worker, tls: pki.other });
    const reply = await conn.request({ type: 'statsRequest' });
    assert.is(reply.body.type, 'statsReply');
    assert.is(seen.hellos, 1);
    assert.is(seen.requests, 1);
    await conn.close();
    // The HMAC still counts: the right certificate with the wrong secret is refused at the hello.
    const wrong = await dial(listener.url, { nodeId: 'cli', secret: new TextEncoder().encode('another-secret-0123456'), role: Role.Worker, tls: pki.other }).then(() => 'open', (e: Error) => e.message);
    assert.match(wrong, /closed the connection during the handshake|HMAC/);
    assert.is(seen.hellos, 1, 'the bad hello never reached onHello');
  } finally { await listener.close(); }
});

for (const [what, creds, code] of [
  ['a certificate from another CA', pki.fromOtherCa, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
  ['an expired certificate', pki.expired, /CERT_HAS_EXPIRED/],
  ['a certificate without the cluster name', pki.wrongName, /does not carry the cluster name/],
] as const) {
  test(`a peer with ${what} is refused before any message is read`, async () => {
    const { listener, seen } = await countingListener();
    try {
      const r = await dial(listener.url, { nodeId: 'intruder', secret: SECRET, role: Role.Worker, tls: creds }).then(() => 'open', (e: Error) => e.message);
      assert.match(r, /cannot connect|closed the connection/, r);
      await until('the refusal to be reported', () => seen.refused.length > 0);
      assert.match(seen.refused.join('\n'), code);
      assert.is(listener.stats.refusedTls, 1);
      assert.equal([seen.hellos, seen.requests, listener.stats.refusedHello], [0, 0, 0], 'nothing reached the handlers; not even a hello was parsed');
    } finally { await listener.close(); }
  });
}

test('a TLS peer without a certificate, and a plain ws:// one, are refused in the handshake', async () => {
  const { listener, seen } = await countingListener();
  try {
    const port = Number(new URL(listener.url).port);
    const noCert = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: pki.good.ca, servername: 'hybridps' });
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n'));
      s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
      s.on('close', () => resolve('closed'));
    });
    assert.match(noCert, /CERTIFICATE_REQUIRED|closed|ECONNRESET/);
    const plain = await new Promise<string>((resolve) => {
      const ws = new WebSocket(listener.url.replace('wss://', 'ws://'));
      ws.on('open', () => resolve('open'));
      ws.on('error', (e) => resolve(e.message));
    });
    assert.not.equal(plain, 'open');
    await until('both refusals', () => listener.stats.refusedTls === 2);
    assert.match(seen.refused.join('\n'), /PEER_DID_NOT_RETURN_A_CERTIFICATE/);
    assert.equal([seen.hellos, seen.requests], [0, 0]);
    // A node without credentials is told what to pass rather than trying.
    const none = await dial(listener.url, { nodeId: 'cli', secret: SECRET, role: Role.Worker }).then(() => 'open', (e: Error) => e.message);
    assert.match(none, /takes TLS links only .* pass --tls-cert, --tls-key and --tls-ca/);
  } finally { await listener.close(); }
});

test('the dialler refuses a listener whose certificate is not from its CA', async () => {
  const { listener, seen } = await countingListener(pki.fromOtherCa);
  try {
    const r = await dial(listener.url, { nodeId: 'cli', secret: SECRET, role: Role.Worker, tls: pki.good }).then(() => 'open', (e: Error) => e.message);
    assert.match(r, /certificate/i, r);
    assert.is(seen.hellos, 0, 'no hello was sent to it');
  } finally { await listener.close(); }
});

test('loadTls: none named is plain; files that cannot work fail with their name and the fix', () => {
  assert.is(loadTls({}, {}), undefined);
  const f = pki.goodFiles;
  const ok = loadTls(f, {})!;
  assert.is(ok.name, 'hybridps');
  assert.ok(loadTls({}, { HYBRIDPS_TLS_CERT: f.tlsCert, HYBRIDPS_TLS_KEY: f.tlsKey, HYBRIDPS_TLS_CA: f.tlsCa }), 'from the environment');
  assert.throws(() => loadTls({ tlsCert: f.tlsCert }, {}), /missing --tls-key, --tls-ca/);
  assert.throws(() => loadTls({ ...f, tlsKey: join(pki.dir, 'nope.key') }, {}), /cannot read the TLS key .*nope\.key/);
  assert.throws(() => loadTls({ ...f, tlsKey: pki.expired.certFile.replace('.crt', '.key') }, {}), /is not the key of/);
  assert.throws(() => loadTls({ ...f, tlsCert: pki.expired.certFile, tlsKey: pki.expired.certFile.replace('.crt', '.key') }, {}), /expired on .* make a new one/);
  assert.throws(() => loadTls({ ...f, tlsCert: pki.fromOtherCa.certFile, tlsKey: pki.fromOtherCa.certFile.replace('.crt', '.key') }, {}), /is not signed by the CA/);
  assert.throws(() => loadTls({ ...f, tlsCert: pki.wrongName.certFile, tlsKey: pki.wrongName.certFile.replace('.crt', '.key') }, {}), /does not carry the cluster name "hybridps"/);
  assert.ok(loadTls({ ...f, tlsCert: pki.wrongName.certFile, tlsKey: pki.wrongName.certFile.replace('.crt', '.key'), tlsName: 'not-hybridps' }, {}), '--tls-name');
  const junk = join(pki.dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate');
  assert.throws(() => loadTls({ ...f, tlsCert: junk }, {}), /junk\.pem is not a PEM certificate/);
});

test.after(() => pki.remove());
test.run();
