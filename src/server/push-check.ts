// What a server checks in a push before touching any table, and the error code each refusal
// goes back with: the code is decided where the cause is found, not read back from the message.
import { ErrorCode } from '../wire/codec.ts';
import { KeyIndex } from '../keys/key-index.ts';
import { KEY_LIMIT_HI, keyWords } from '../keys/keys.ts';

export interface PushProblem { code: ErrorCode; message: string }

/**
 * Why a push must be refused, or null: values.length === keys.length * dim (else BadDimension),
 * every key < 2^48 and no key twice (else Malformed), every value finite (else NonFinite). The
 * server calls this before touching the table, so a bad push changes nothing.
 */
export function pushProblem(dim: number, keys: BigUint64Array, values: Float32Array): PushProblem | null {
  const n = keys.length;
  if (values.length !== n * dim) {
    return { code: ErrorCode.BadDimension, message: `values length ${values.length} does not match ${n} keys x dim ${dim} = ${n * dim}` };
  }
  const w = keyWords(keys);
  for (let i = 0; i < n; i++) {
    if (w[2 * i + 1]! >= KEY_LIMIT_HI) return { code: ErrorCode.Malformed, message: `key ${keys[i]} at position ${i} is not below 2^48 (row ids are 48-bit)` };
  }
  if (n > 1) {
    const seen = new KeyIndex(n);
    for (let i = 0; i < n; i++) {
      const first = seen.lookupOrInsert(w[2 * i]!, w[2 * i + 1]!, i);
      if (first >= 0) return { code: ErrorCode.Malformed, message: `duplicate key ${keys[i]} at positions ${first} and ${i} (a push carries one summed gradient per row)` };
    }
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) {
      const row = Math.floor(i / dim);
      return { code: ErrorCode.NonFinite, message: `gradient value ${v} for key ${keys[row]} (position ${row}, column ${i - row * dim}) is not finite` };
    }
  }
  return null;
}

/** pushProblem's message alone (null for a good push). */
export function checkPush(dim: number, keys: BigUint64Array, values: Float32Array): string | null {
  return pushProblem(dim, keys, values)?.message ?? null;
}
