// What a server checks in a peer's request before it touches a table. Each check answers with the
// problem as an error code and a sentence naming the cause, or null; `refuse` throws it as an
// RpcError with that code. The code is decided where the problem is found, never read back out
// of the sentence.
import { RpcError } from '../transport/index.ts';
import { ErrorCode } from '../wire/codec.ts';
import { KeyIndex } from '../keys/key-index.ts';
import { keyRangeProblem, keyWords } from '../keys/keys.ts';

export interface Problem { code: ErrorCode; message: string }
/** A refused push's code and message. */
export type PushProblem = Problem;

/** Throws `p` as an RpcError with its code; nothing when there is no problem. */
export function refuse(p: Problem | null): void {
  if (p) throw new RpcError(p.code, p.message);
}

/** Every key below 2^48 (Malformed otherwise). */
export function checkKeys(keys: BigUint64Array): Problem | null {
  const bad = keyRangeProblem(keys);
  return bad ? { code: ErrorCode.Malformed, message: bad } : null;
}

/** Every value finite (NonFinite otherwise); `what` names a value in the message ("copyRows value"). */
export function checkFinite(values: ArrayLike<number>, what: string): Problem | null {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) return { code: ErrorCode.NonFinite, message: `${what} ${i} is not finite` };
  }
  return null;
}

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
  const range = checkKeys(keys);
  if (range) return range;
  if (n > 1) {
    const w = keyWords(keys);
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
