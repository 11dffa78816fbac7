// Float64 CPU DLRM forward/backward composed from the per-kernel references in
// helpers/reference.ts, in the layout of src/model/dlrm.ts (W[out][in] then b, bottom then top).
// Used by the model and worker tests (src/model/dlrm-reference.ts is the FD-checked reference;
// this composition must agree with it and is kept here so these tests do not depend on its API).
import * as ref from './helpers/reference.ts';
import { dlrmLayers, type DlrmConfig } from '../src/model/dlrm.ts';
import type { PreparedTable } from '../src/model/batch-prep.ts';

export interface CpuStep {
  loss: number;
  /** Gradients of the batch-mean loss. */
  denseGrads: Float64Array;
  tableGrads: Float64Array[];
  /** One logit per sample (the forward pass's output). */
  logits: Float64Array;
}

export function dlrmCpuStep(c: DlrmConfig, dense: ArrayLike<number>, x: ArrayLike<number>, labels: ArrayLike<number>, B: number,
  tables: { prep: PreparedTable; rows: ArrayLike<number> }[]): CpuStep {
  const layers = dlrmLayers(c);
  const T = c.numTables, D = c.dim;
  const offs: { w: number; b: number }[] = [];
  let at = 0;
  for (const L of layers) {
    offs.push({ w: at, b: at + L.outDim * L.inDim });
    at += L.outDim * L.inDim + L.outDim;
  }
  const W = (i: number) => Array.prototype.slice.call(dense, offs[i].w, offs[i].w + layers[i].outDim * layers[i].inDim) as number[];
  const Bias = (i: number) => Array.prototype.slice.call(dense, offs[i].b, offs[i].b + layers[i].outDim) as number[];
  const nb = layers.filter((L) => L.prefix === 'bottom').length;

  const acts: ArrayLike<number>[] = [x];
  let h: ArrayLike<number> = x;
  for (let i = 0; i < nb; i++) { h = ref.linearFwd(h, W(i), Bias(i), B, layers[i].outDim, layers[i].inDim, layers[i].relu); acts.push(h); }
  const z = h;
  const emb = new Float64Array(B * T * D);
  tables.forEach((t, i) => ref.embeddingBag(t.rows, t.prep.inverse, t.prep.bagOffsets, B, D, T * D, i * D, 0, emb));
  const inter = ref.interactionFwd(z, emb, B, D, T);
  h = inter;
  const topActs: ArrayLike<number>[] = [inter];
  for (let i = nb; i < layers.length; i++) { h = ref.linearFwd(h, W(i), Bias(i), B, layers[i].outDim, layers[i].inDim, layers[i].relu); topActs.push(h); }
  const { loss, dlogits } = ref.bceFwdBwd(h, labels, B);
  const meanLoss = loss.reduce((s, v) => s + v, 0) / B;

  const grads = new Float64Array(at);
  let dy: ArrayLike<number> = dlogits;
  const back = (i: number, xin: ArrayLike<number>, y: ArrayLike<number>, needInput: boolean) => {
    const L = layers[i];
    const g = ref.maskedGrad(dy, y, L.relu);
    grads.set(ref.linearBwdWeight(g, xin, B, L.outDim, L.inDim), offs[i].w);
    grads.set(ref.biasGrad(g, B, L.outDim), offs[i].b);
    if (needInput) dy = ref.linearBwdInput(g, W(i), B, L.outDim, L.inDim);
  };
  for (let i = layers.length - 1; i >= nb; i--) back(i, topActs[i - nb], topActs[i - nb + 1], true);
  const { dz, de } = ref.interactionBwd(z, emb, dy, B, D, T);
  dy = dz;
  for (let i = nb - 1; i >= 0; i--) back(i, acts[i], acts[i + 1], i > 0);
  const tableGrads = tables.map((t, i) => ref.segmentSum(t.prep.csrOffsets, t.prep.csrItems, t.prep.bagOffsets, de, t.prep.unique.length, D, T * D, i * D, 0));
  return { loss: meanLoss, denseGrads: grads, tableGrads, logits: Float64Array.from(topActs[topActs.length - 1]!) };
}
