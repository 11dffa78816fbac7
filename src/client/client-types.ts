// The types a PSClient is called with and answers in (ps-client.ts): its options, the bytes it
// moved, a pull's options, and rows with their optimizer state. Kept apart so the client itself
// holds only what it does.
import type { TlsCredentials } from '../transport/index.ts';
import type { Role, RowFormat } from '../wire/codec.ts';

export interface PSClientOptions {
  secret: Uint8Array;
  /** TLS credentials for its links (mutual TLS); absent: plain links. */
  tls?: TlsCredentials;
  schedulerUrl: string;
  nodeId?: string;
  role?: Role.Worker | Role.Client;
  /** Address this node listens on (the worker's allreduce ring), announced to the scheduler. */
  address?: string;
  requestTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** How row values travel in pull replies and pushes: f32 (default), f16 or bf16 (2 bytes a value; docs/wire.md). */
  format?: RowFormat;
  /** Older spelling of format 'f16' (true); may not contradict `format`. */
  f16?: boolean;
  maxFrameBytes?: number;
  /** Attempts per request part across view changes and reconnects. */
  retries?: number;
  /**
   * Send the pulls (pushes) issued in one event-loop turn as one PullBatch (PushBatch) per server
   * (default true); false sends one Pull / Push per table per server.
   */
  coalesce?: boolean;
}

export interface WireBytes { pull: number; push: number; other: number }

/** Rows' optimizer state, in the order of the keys pulled: slot k of key j at slots[k][j * dim ..], its update count at steps[j]. */
export interface PulledState { slots: Float32Array[]; steps: Float32Array }
/**
 * A pull's clock (waited on as the table's consistency requires); `into`: >= keys x dim floats to
 * write the rows into; `at` (with `into`): key k's row goes to row at[k] of `into`, the others untouched.
 */
export interface PullOptions { clock?: number; into?: Float32Array; at?: Int32Array }

/** Rows with their optimizer state, in `keys` order (PSClient.readRows / writeRows). */
export interface RowsWithState { keys: BigUint64Array; values: Float32Array; slots: Float32Array[]; steps: Uint32Array }
