// What a launcher and the role processes it starts say to each other, and the only code that says
// it. Messages travel on Node's IPC channel (the child's fourth stdio, structured clone through
// `serialization: 'advanced'`), typed at both ends and checked field by field on receipt, so a
// malformed message is a ProtocolError naming what is wrong, never a misread; stdout and stderr
// carry human logs only. Child -> parent: `ready` (every role, once it listens), then a worker's
// `progress`, `eval`, `checkpoint` and `result`. Parent -> worker: `checkpointAt` (a checkpoint
// on request). A child exits when the channel closes: its parent is gone, even after a SIGKILL.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { WorkerEvent, WorkerProgress, WorkerResult, EvalResult } from '../train/worker.ts';
import { ROLE_NAMES, type RoleName } from './cluster-env.ts';

export type { RoleName };

/** A role announcing itself once it listens. */
export interface ReadyInfo { role: RoleName; pid: number; url?: string; nodeId?: string; metrics?: string }

export type ChildMessage = { kind: 'ready'; ready: ReadyInfo } | WorkerEvent;
export type ParentMessage = { kind: 'checkpointAt'; step: number };

/**
 * What was wrong: not an object, a kind nobody sends, a field of the wrong type, or a well-formed
 * message at the wrong time (a second ready, a report from a role that makes none).
 */
export type ProtocolErrorCode = 'not-an-object' | 'unknown-kind' | 'bad-field' | 'out-of-order';

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(readonly code: ProtocolErrorCode, message: string) { super(message); }
}

// ---- checking a received value against its type ----

/** Returns `v` as a T (a fresh object holding only T's fields) or throws naming the bad field. */
type Parser<T> = (v: unknown, at: string) => T;

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
const fail = (at: string, want: string, v: unknown): never => { throw new ProtocolError('bad-field', `${at.replace(/^\./, '') || 'the message'}: expected ${want}, got ${describe(v)}`); };
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const num: Parser<number> = (v, at) => (typeof v === 'number' ? v : fail(at, 'a number', v));
const int: Parser<number> = (v, at) => (Number.isSafeInteger(v) ? (v as number) : fail(at, 'an integer', v));
const str: Parser<string> = (v, at) => (typeof v === 'string' ? v : fail(at, 'a string', v));
const oneOf = <T extends string>(...options: T[]): Parser<T> => (v, at) => (options.includes(v as T) ? (v as T) : fail(at, `one of ${options.join(', ')}`, v));
const optional = <T>(p: Parser<T>): Parser<T | undefined> => (v, at) => (v === undefined ? undefined : p(v, at));
const list = <T>(p: Parser<T>): Parser<T[]> => (v, at) => (Array.isArray(v) ? v.map((x, i) => p(x, `${at}[${i}]`)) : fail(at, 'an array', v));
const record = <T>(p: Parser<T>): Parser<Record<string, T>> => (v, at) => {
  if (!isObject(v)) return fail(at, 'an object', v);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, p(x, `${at}.${k}`)]));
};
/** One parser per field of T, optional ones included (the compiler holds the two together). */
function object<T>(fields: { [K in keyof T]-?: Parser<T[K]> }): Parser<T> {
  return (v, at) => {
    if (!isObject(v)) return fail(at, 'an object', v);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(fields) as (keyof T & string)[]) {
      const x = fields[k](v[k], `${at}.${k}`);
      if (x !== undefined) out[k] = x;
    }
    return out as T;
  };
}
type Of<M extends { kind: string }, K extends M['kind']> = Extract<M, { kind: K }>;
/** A message: its `kind` picks the parser. */
function byKind<M extends { kind: string }>(from: string, parsers: { [K in M['kind']]: Parser<Of<M, K>> }): (v: unknown) => M {
  const kinds = Object.keys(parsers) as M['kind'][];
  return (v) => {
    const kind = isObject(v) ? v.kind : undefined;
    if (!isObject(v)) throw new ProtocolError('not-an-object', `message from ${from}: expected an object, got ${describe(v)}`);
    if (!kinds.includes(kind as M['kind'])) throw new ProtocolError('unknown-kind', `message from ${from}: kind ${describe(kind)} is not one of ${kinds.join(', ')}`);
    try { return parsers[kind as M['kind']](v, ''); } catch (e) { throw new ProtocolError('bad-field', `${kind} message from ${from}: ${(e as Error).message}`); }
  };
}
const kind = <K extends string>(k: K): Parser<K> => oneOf(k);

const bytes = object<WorkerProgress['bytes']>({ pull: num, push: num, allreduce: num });
const evalResult = object<EvalResult>({ step: int, samples: int, positives: int, logloss: num, auc: num });

/** Checks a message a child sent; throws a ProtocolError naming the bad field. */
export const parseChildMessage = byKind<ChildMessage>('a child', {
  ready: object<Of<ChildMessage, 'ready'>>({
    kind: kind('ready'),
    ready: object<ReadyInfo>({ role: oneOf(...ROLE_NAMES), pid: int, url: optional(str), nodeId: optional(str), metrics: optional(str) }),
  }),
  progress: object<Of<ChildMessage, 'progress'>>({
    kind: kind('progress'),
    progress: object<WorkerProgress>({ rank: int, step: int, loss: num, samples: int, wallSec: num, bytes, ms: record(num) }),
  }),
  eval: object<Of<ChildMessage, 'eval'>>({ kind: kind('eval'), eval: evalResult }),
  checkpoint: object<Of<ChildMessage, 'checkpoint'>>({ kind: kind('checkpoint'), step: int, dir: str }),
  result: object<Of<ChildMessage, 'result'>>({
    kind: kind('result'),
    result: object<WorkerResult>({
      model: str, rank: int, nodeId: str, steps: int, firstStep: int, samples: int, wallSec: num, evalSec: num, bytes, phaseMs: record(num), denseHash: str,
      data: object<WorkerResult['data']>({ lines: int, parsed: int, split: oneOf('bytes', 'stream'), bad: int, badLines: list(object<WorkerResult['data']['badLines'][number]>({ file: str, line: int, why: str })) }),
      eval: optional(evalResult), checkpoint: optional(str),
      cache: optional(object<NonNullable<WorkerResult['cache']>>({ hits: int, misses: int, evictions: int, bytesSaved: int })),
      hotRows: optional(int), hotHash: optional(str),
    }),
  }),
});

/** Checks a message the launcher sent; throws a ProtocolError naming the bad field. */
export const parseParentMessage = byKind<ParentMessage>('the launcher', {
  checkpointAt: object<ParentMessage>({ kind: kind('checkpointAt'), step: int }),
});

// ---- the parent's end ----

/** spawn() options for a child that speaks this protocol: no stdin, logs on stdout/stderr, the channel fourth. */
export function childSpawnOptions(env: NodeJS.ProcessEnv): SpawnOptions {
  return { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' };
}

/** Every message `child` sends, checked; a malformed one goes to `onError` instead. */
export function onChildMessage(child: ChildProcess, handle: (m: ChildMessage) => void, onError: (e: ProtocolError) => void): void {
  child.on('message', (raw: unknown) => {
    let m: ChildMessage;
    try { m = parseChildMessage(raw); } catch (e) { onError(e as ProtocolError); return; }
    handle(m);
  });
}

/** Sends to a child; a child already gone (channel closed) is skipped, not an error. */
export function sendToChild(child: ChildProcess, m: ParentMessage): void {
  if (child.connected) child.send(m, () => {});
}

// ---- the child's end ----

/** Whether this process was started by a launcher speaking this protocol (it has the channel). */
export function hasLauncher(): boolean {
  return typeof process.send === 'function' && process.connected;
}

const pending = new Set<Promise<void>>();

/** Tells the launcher (a no-op without one); see flushToLauncher before exiting. */
export function tellLauncher(m: ChildMessage): void {
  if (!hasLauncher()) return;
  const sent = new Promise<void>((resolve) => { process.send!(m, undefined, {}, () => resolve()); });
  pending.add(sent);
  void sent.then(() => pending.delete(sent));
}

/** Resolves once every message told so far has left this process (the channel is asynchronous), or after `timeoutMs`. */
export async function flushToLauncher(timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(pending), new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
  clearTimeout(timer);
}

/**
 * Every message from the launcher, checked; a malformed one is refused with a line on stderr (or
 * handed to `onError`) and changes nothing.
 */
export function onLauncherMessage(handle: (m: ParentMessage) => void, onError?: (e: ProtocolError) => void): void {
  process.on('message', (raw: unknown) => {
    let m: ParentMessage;
    try { m = parseParentMessage(raw); } catch (e) {
      if (onError) onError(e as ProtocolError);
      else process.stderr.write(`refused a malformed message from the launcher: ${(e as Error).message}\n`);
      return;
    }
    handle(m);
  });
}

/**
 * `gone` runs when the channel to the launcher closes (the launcher exited or was killed), or at
 * once if it closed before this was called (a launcher killed while this process started).
 */
export function onLauncherGone(gone: () => void): void {
  if (typeof process.send !== 'function') return; // no launcher ever: an orchestrator's process
  if (process.connected) process.once('disconnect', gone);
  else setImmediate(gone);
}
