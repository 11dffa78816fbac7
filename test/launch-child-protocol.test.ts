// The launcher <-> child protocol (src/launch/child-protocol.ts): every message kind arrives
// intact between a real parent and a real child process over the IPC channel, and a malformed
// message is refused at either end with an error naming the bad field (and changes nothing).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  childSpawnOptions, onChildMessage, sendToChild, parseChildMessage, parseParentMessage, ProtocolError, type ChildMessage, type ProtocolErrorCode,
} from '../src/launch/child-protocol.ts';
import { CHILD_MESSAGES } from './helpers/protocol-fixtures.ts';

const CHILD = fileURLToPath(new URL('./helpers/protocol-child.ts', import.meta.url));

function refusal(f: () => unknown, code: ProtocolErrorCode = 'bad-field'): string {
  try { f(); } catch (e) {
    assert.instance(e, ProtocolError);
    assert.is((e as ProtocolError).code, code);
    return (e as Error).message;
  }
  throw new Error('accepted a malformed message');
}

test('malformed messages are refused with the field that is wrong', () => {
  assert.is(refusal(() => parseChildMessage('HYBRIDPS_READY {}'), 'not-an-object'), 'message from a child: expected an object, got "HYBRIDPS_READY {}"');
  assert.is(refusal(() => parseChildMessage({ kind: 'hello' }), 'unknown-kind'), 'message from a child: kind "hello" is not one of ready, progress, eval, checkpoint, result');
  assert.is(refusal(() => parseChildMessage({ kind: 'ready', ready: { role: 'worker' } })), 'ready message from a child: ready.pid: expected an integer, got undefined');
  assert.is(refusal(() => parseChildMessage({ kind: 'ready', ready: { role: 'chief', pid: 1 } })), 'ready message from a child: ready.role: expected one of scheduler, server, worker, got "chief"');
  const progress = structuredClone(CHILD_MESSAGES[2]!) as Extract<ChildMessage, { kind: 'progress' }>;
  (progress.progress.ms as Record<string, unknown>).pull = '3';
  assert.is(refusal(() => parseChildMessage(progress)), 'progress message from a child: progress.ms.pull: expected a number, got "3"');
  const result = structuredClone(CHILD_MESSAGES[5]!) as Extract<ChildMessage, { kind: 'result' }>;
  (result.result.data.badLines[0] as unknown as Record<string, unknown>).line = 1.5;
  assert.is(refusal(() => parseChildMessage(result)), 'result message from a child: result.data.badLines[0].line: expected an integer, got number 1.5');
  assert.is(refusal(() => parseParentMessage({ checkpointAt: 5 }), 'unknown-kind'), 'message from the launcher: kind undefined is not one of checkpointAt');
  assert.is(refusal(() => parseParentMessage({ kind: 'checkpointAt', step: 'soon' })), 'checkpointAt message from the launcher: step: expected an integer, got "soon"');
});

test('a checked message holds exactly the fields of its type', () => {
  for (const m of CHILD_MESSAGES) assert.equal(parseChildMessage(m), m);
  assert.equal(parseChildMessage({ ...CHILD_MESSAGES[4]!, extra: 1 }), CHILD_MESSAGES[4], 'unknown fields are dropped');
  assert.equal(parseParentMessage({ kind: 'checkpointAt', step: 3 }), { kind: 'checkpointAt', step: 3 });
});

interface Child { proc: ChildProcess; messages: ChildMessage[]; errors: ProtocolError[]; stderr: () => string; exited: Promise<number | null> }

function startChild(env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD], childSpawnOptions({ ...process.env, ...env }));
  const c: Child = { proc, messages: [], errors: [], stderr: () => err, exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
  let err = '';
  proc.stderr!.on('data', (d) => { err += d; });
  onChildMessage(proc, (m) => c.messages.push(m), (e) => c.errors.push(e));
  return c;
}

// A hang guard: a child under tsx can take a while to start on a busy machine.
async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('every message kind round-trips between a real parent and child; a malformed one from the parent changes nothing', async () => {
  const c = startChild();
  try {
    await until(() => c.messages.length === CHILD_MESSAGES.length, 'the fixture messages');
    assert.equal(c.messages, CHILD_MESSAGES);
    assert.equal(c.errors, []);
    sendToChild(c.proc, { kind: 'checkpointAt', step: 17 });
    await until(() => c.messages.length === CHILD_MESSAGES.length + 1, 'the answer to checkpointAt');
    assert.equal(c.messages.at(-1), { kind: 'checkpoint', step: 17, dir: 'received' });
    c.proc.send({ kind: 'checkpointAt', step: 'soon' });
    await until(() => c.stderr().includes('refused'), 'the refusal on stderr');
    assert.match(c.stderr(), 'refused a malformed message from the launcher: checkpointAt message from the launcher: step: expected an integer, got "soon"');
    sendToChild(c.proc, { kind: 'checkpointAt', step: 18 });
    await until(() => c.messages.length === CHILD_MESSAGES.length + 2, 'the answer after the refusal');
    assert.equal(c.messages.at(-1), { kind: 'checkpoint', step: 18, dir: 'received' });
    c.proc.disconnect(); // the launcher going away: the child exits on its own
    assert.is(await c.exited, 0);
  } finally { c.proc.kill('SIGKILL'); }
});

test('a malformed message from a child reaches the parent as a ProtocolError, and the rest still arrive', async () => {
  const c = startChild({ MALFORMED: '1' });
  try {
    await until(() => c.messages.length === CHILD_MESSAGES.length, 'the fixture messages');
    assert.is(c.errors.length, 1);
    assert.is(c.errors[0]!.code, 'bad-field');
    assert.is(c.errors[0]!.message, 'progress message from a child: progress.step: expected an integer, got "seven"');
    assert.equal(c.messages, CHILD_MESSAGES);
  } finally { c.proc.kill('SIGKILL'); await c.exited; }
});

test('a child whose launcher went away before it was listening exits too', async () => {
  const c = startChild({ LATE: '1' });
  c.proc.disconnect();
  assert.is(await c.exited, 0);
});

test.run();
