// A worker's training batches read and parsed in a thread of its own (node:worker_threads), so
// that the main thread, which runs the step, only takes finished minibatches. Why: the main thread
// is the worker's bottleneck once a GPU does the model's work in a few milliseconds, and reading
// and parsing a batch of 2048 Criteo lines costs it 3.6 ms of CPU (bench/RESULTS.md, 2026-12-04).
// The thread runs trainBatches (batches.ts) unchanged and stays up to READ_AHEAD batches ahead of
// what the step has taken; each batch's arrays are transferred, not copied. What the caller sees
// is trainBatches' own interface: the batches in order, the data's statistics as of the last batch
// handed out, and the data cursor after a step (asked of the thread, which holds the schedule).
// Errors keep their messages: a bad data file fails the run as it did without the thread. The
// held-out batches of an evaluation are read in a thread the same way (evalBatchesInThread).
// Every exchange with the thread is one of the typed messages below.
import { moduleThread } from '../util/package-files.ts';
import type { DataCursor } from '../data/schedule.ts';
import type { TrainConfig } from './config.ts';
import type { DataLog, DataResume, DataStats, Minibatch } from './batches.ts';

/** Batches the thread reads ahead of the step (each ~330 KB at batch 2048: memory is no concern). */
export const READ_AHEAD = 4;

/** What the thread reads: a worker's training batches (trainBatches), or held-out batches (evalBatches). */
export type DataThreadInit = { readAhead: number; cfg: TrainConfig } & (
  | { kind: 'train'; rank: number; workers: number; skipSteps: number; resume?: DataResume }
  | { kind: 'eval'; batch: number; limit: number });

/** Main thread -> data thread. */
export type ToDataThread =
  /** `n` more batches may be read (one for each the step took). */
  | { type: 'credit'; n: number }
  /** The data cursor after `step` steps (answered by a `cursor` message with the same id). */
  | { type: 'cursor'; id: number; step: number };

/** Data thread -> main thread. */
export type FromDataThread =
  | { type: 'batch'; batch: Minibatch; stats: DataStats }
  | { type: 'end'; stats: DataStats }
  | { type: 'error'; message: string }
  | { type: 'cursor'; id: number; cursor?: DataCursor; error?: string }
  | { type: 'log'; level: 'info' | 'warn'; msg: string; fields?: Record<string, unknown> };

/** trainBatches' interface, served by a thread; `close()` stops the thread (the cursor is gone then). */
export interface ThreadedBatches {
  batches: AsyncGenerator<Minibatch>;
  stats: () => DataStats;
  cursor: (step: number) => Promise<DataCursor | undefined>;
  close: () => Promise<void>;
}

export function trainBatchesInThread(cfg: TrainConfig, o: { rank: number; workers: number; skipSteps: number; resume?: DataResume; log?: DataLog }): ThreadedBatches {
  return inThread({ kind: 'train', cfg, rank: o.rank, workers: o.workers, skipSteps: o.skipSteps, resume: o.resume, readAhead: READ_AHEAD }, o.log);
}

/**
 * evalBatches (batches.ts) read in a thread: the held-out samples are read and parsed while the
 * main thread pulls and scores the batch before. The thread ends with the generator (its end, an
 * error, or the caller's break).
 */
export async function* evalBatchesInThread(cfg: TrainConfig, batch: number, limit: number): AsyncGenerator<Minibatch> {
  const t = inThread({ kind: 'eval', cfg, batch, limit, readAhead: READ_AHEAD });
  try {
    yield* t.batches;
  } finally {
    await t.close();
  }
}

/** Starts the thread on `init` and serves what it posts; `log` gets its log lines. */
function inThread(init: DataThreadInit, log?: DataLog): ThreadedBatches {
  const thread = moduleThread('train/data-thread-main', init);
  thread.unref(); // never what keeps the process alive
  const send = (m: ToDataThread) => thread.postMessage(m);
  const inbox: FromDataThread[] = [];
  let wake: (() => void) | null = null;
  let failure: Error | null = null; // the thread died: every later wait fails with this
  const cursors = new Map<number, { resolve: (c: DataCursor | undefined) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let stats: DataStats = { lines: 0, bad: 0, badLines: [], parsed: 0, split: init.cfg.dataSplit };
  const fail = (e: Error) => {
    failure ??= e;
    for (const w of cursors.values()) w.reject(failure);
    cursors.clear();
    wake?.();
  };
  thread.on('message', (m: FromDataThread) => {
    if (m.type === 'log') { log?.(m.level, m.msg, m.fields); return; }
    if (m.type === 'cursor') {
      const w = cursors.get(m.id);
      cursors.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error)); else w?.resolve(m.cursor);
      return;
    }
    inbox.push(m);
    wake?.();
  });
  thread.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
  thread.on('exit', (code) => fail(new Error(`the data reader thread exited (code ${code}) before the data ended`)));

  const nextMessage = async (): Promise<FromDataThread> => {
    while (inbox.length === 0) {
      if (failure) throw failure;
      await new Promise<void>((r) => { wake = r; });
      wake = null;
    }
    return inbox.shift()!;
  };

  async function* batches(): AsyncGenerator<Minibatch> {
    for (;;) {
      const m = await nextMessage();
      if (m.type === 'error') throw new Error(m.message);
      if (m.type !== 'batch') { if (m.type === 'end') stats = m.stats; return; }
      stats = m.stats;
      send({ type: 'credit', n: 1 });
      yield m.batch;
    }
  }

  return {
    batches: batches(),
    stats: () => stats,
    cursor: (step) => new Promise((resolve, reject) => {
      if (failure) { reject(failure); return; }
      const id = nextId++;
      cursors.set(id, { resolve, reject });
      send({ type: 'cursor', id, step });
    }),
    close: async () => {
      failure ??= new Error('the data reader thread was closed');
      await thread.terminate();
    },
  };
}
