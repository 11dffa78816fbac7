// The data reader thread's side of data-thread.ts: runs trainBatches (or evalBatches) with the
// worker's configuration, posts each batch (its arrays transferred) as long as the main thread
// has given credit for it, and answers cursor requests from the schedule. It stays up after the
// data ends, for the cursor of the last checkpoint, until the main thread closes it.
import { parentPort, workerData } from 'node:worker_threads';
import { evalBatches, trainBatches, type DataStats } from './batches.ts';
import type { DataThreadInit, FromDataThread, ToDataThread } from './data-thread.ts';

const port = parentPort!;
const init = workerData as DataThreadInit;
const post = (m: FromDataThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
/** Held-out batches have no statistics or cursor of their own (the training pass counts the data). */
const noStats: DataStats = { lines: 0, bad: 0, badLines: [], parsed: 0, split: init.cfg.dataSplit };
const source = init.kind === 'eval'
  ? { batches: evalBatches(init.cfg, init.batch, init.limit), stats: () => noStats, cursor: async () => undefined }
  : trainBatches(init.cfg, {
    rank: init.rank, workers: init.workers, skipSteps: init.skipSteps, resume: init.resume,
    log: (level, msg, fields) => post({ type: 'log', level, msg, fields }),
  });

let credit = init.readAhead;
let more: (() => void) | null = null;
port.on('message', (m: ToDataThread) => {
  if (m.type === 'credit') { credit += m.n; more?.(); return; }
  source.cursor(m.step).then(
    (cursor) => post({ type: 'cursor', id: m.id, cursor }),
    (e: unknown) => post({ type: 'cursor', id: m.id, error: (e as Error)?.message ?? String(e) }),
  );
});

try {
  for await (const mb of source.batches) {
    // A minibatch's arrays are its own (batches.ts allocates each one): handed over, not copied.
    post({ type: 'batch', batch: mb, stats: source.stats() }, [mb.dense.buffer, mb.labels.buffer, mb.cats.buffer] as ArrayBuffer[]);
    credit--;
    while (credit <= 0) await new Promise<void>((r) => { more = r; });
    more = null;
  }
  post({ type: 'end', stats: source.stats() });
} catch (e) {
  post({ type: 'error', message: (e as Error)?.message ?? String(e) });
}
