// Held-out evaluation on one worker: the held-out batches through the model's forward pass, with
// the rows (and, in pure-PS mode, the dense vector) pulled *at the worker's clock*. Under BSP a
// pull at clock k waits until every worker's step-k update is applied, so "step k" in the report
// means the parameters after step k on every worker, not whatever the servers held when rank 0
// happened to finish (without the clock, 2-4 workers showed a mix in about one run in three).
import { prepareTable } from '../model/batch-prep.ts';
import type { ModelRunner } from '../model/model-runner.ts';
import type { PSClient } from '../client/ps-client.ts';
import type { ModelBatch } from '../model/model-module.ts';
import { exactAuc, loglossFromLogits } from '../metrics/classification.ts';
import type { Minibatch } from './batches.ts';
import { pullSplit, type HotRows } from '../worker/hot-rows.ts';

/** `positives`: held-out samples labelled 1 (with `samples`, what the AUC's standard error needs). */
export interface EvalResult { step: number; samples: number; positives: number; logloss: number; auc: number }

export interface EvalSource {
  client: PSClient; runner: ModelRunner; tableIds: number[];
  /** The held-out batches to score (the first `limit` held-out samples). */
  batches: (limit: number) => AsyncIterable<Minibatch>;
  /** A reader's minibatch as the model's inputs. */
  toBatch: (mb: Minibatch) => ModelBatch;
  /** The dense parameters as of `clock` (pure-PS: pulled at that clock; hybrid: the local copy). */
  denseAt: (clock: number) => Promise<Float32Array>;
  /** Hot rows held on this worker: they replace the servers' (stale) copies of those rows. */
  hot?: HotRows;
}

/** Scores the first `limit` held-out samples with the parameters after `step`, read at the worker's clock now. */
export async function evaluateHeldOut(src: EvalSource, step: number, limit: number): Promise<EvalResult> {
  const { client, runner, tableIds } = src;
  const clock = client.clockValue;
  runner.setDense(await src.denseAt(clock));
  const logits: number[] = [], labels: number[] = [];
  for await (const mb of src.batches(limit)) {
    const wb = src.toBatch(mb);
    const preps = wb.tables.map((t) => prepareTable(t, wb.B));
    // Hot rows come from the worker's copies; only the others are pulled.
    const rows = await Promise.all(preps.map((p, i) => {
      const split = src.hot?.split(i, p.keys);
      return split ? pullSplit(client, src.hot!, tableIds[i]!, i, split, clock) : client.pull(tableIds[i]!, p.keys, { clock });
    }));
    const scores = await runner.predict({ B: wb.B, inputs: wb.inputs, tables: preps.map((prep, i) => ({ prep, rows: rows[i]! })) });
    for (let i = 0; i < wb.B; i++) { logits.push(scores[i]!); labels.push(wb.inputs.labels![i]!); }
  }
  return { step, samples: labels.length, positives: labels.filter((l) => l > 0.5).length, logloss: loglossFromLogits(logits, labels), auc: exactAuc(logits, labels) };
}
