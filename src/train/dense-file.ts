// Checks a `dense.safetensors` against the model before anything is loaded from it. Files come
// from other tools (PyTorch, numpy), so an element count that fits proves nothing: a [13, 512]
// weight written in (in, out) order under a name declared [512, 13] has the right count and
// would train from a scrambled matrix. Every tensor must have a name the model declares
// (`dense.<param>` or `dense.<param>.slot.<slot>`), the declared shape and a float dtype; every
// declared parameter must be there unless the run allows a partial load (`--partial-dense`),
// and then the names initialised fresh are returned for the log.
import type { Tensor } from '../checkpoint/index.ts';

export type DenseFileErrorCode = 'dense-shape' | 'dense-transposed' | 'dense-unknown' | 'dense-missing' | 'dense-dtype';

export class DenseFileError extends Error {
  override name = 'DenseFileError';
  constructor(readonly code: DenseFileErrorCode, message: string) { super(message); }
}

interface DenseParam { name: string; size: number; shape?: number[] }

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Throws a DenseFileError naming the first problem; returns the declared parameters the file lacks (empty unless `partial`). */
export function checkDenseTensors(path: string, tensors: Record<string, Tensor>, layout: readonly DenseParam[], partial: boolean): string[] {
  const shapes = new Map(layout.map((p) => [`dense.${p.name}`, p.shape ?? [p.size]]));
  const expected = () => layout.map((p) => `dense.${p.name} ${fmt(shapes.get(`dense.${p.name}`)!)}`).join(', ');
  const unknown: string[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const param = /^(.+)\.slot\.[^.]+$/.exec(name)?.[1] ?? name;
    const want = shapes.get(param);
    if (!want) { unknown.push(name); continue; }
    if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new DenseFileError('dense-dtype', `${path}: ${name} is ${t.dtype}; F32 or F64 expected`);
    if (same(t.shape, want)) continue;
    if (t.shape.length === 2 && same([...t.shape].reverse(), want)) {
      throw new DenseFileError('dense-transposed', `${path}: ${name} has shape ${fmt(t.shape)}; the model declares ${fmt(want)}. `
        + 'The file is likely in the transposed layout ([in, out], as a Keras kernel or an x @ W matrix); hybridps, like PyTorch\'s nn.Linear, '
        + 'stores a weight as [out, in]: save W.T instead');
    }
    throw new DenseFileError('dense-shape', `${path}: ${name} has shape ${fmt(t.shape)}; the model declares ${fmt(want)} (a file for another model configuration?)`);
  }
  if (unknown.length) {
    throw new DenseFileError('dense-unknown', `${path}: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a dense parameter of this model `
      + `(misspelled, or a file for another model); the model's dense parameters are: ${expected()}`);
  }
  const missing = [...shapes.keys()].filter((n) => !(n in tensors)).map((n) => n.slice('dense.'.length));
  if (missing.length && !partial) {
    throw new DenseFileError('dense-missing', `${path} has no ${missing.map((n) => `dense.${n}`).join(', ')}; the model's dense parameters are: ${expected()}. `
      + 'Add them, or pass --partial-dense to start the missing ones from the model\'s own initialisation');
  }
  return missing;
}
