// The bounds that keep one hostile or broken peer from costing a process more than a few
// frames' worth of memory and time (docs/wire.md, "Bounds"). Before the hello a link may cost
// almost nothing; after it, what a connection holds is bounded by its in-flight limits and the
// send high-water mark.
import * as wsModule from 'ws';
import { FramedSocket, type Link } from './framed-socket.ts';

export interface LinkLimits {
  /** Largest frame once the peer is authenticated (ws maxPayload; larger closes with 1009). */
  maxFrameBytes?: number;
  /** Largest frame before the hello is verified (a hello is under 300 bytes). */
  preAuthMaxFrameBytes?: number;
  /** Connections a listener holds that have not authenticated yet; more are refused (HTTP 503). */
  maxUnauthenticated?: number;
  /** A connection not authenticated this long after it was accepted is closed. */
  helloTimeoutMs?: number;
  /** Received frames a connection handles at once; at the limit it stops reading its socket. */
  maxInFlight?: number;
  /** Bytes of received frames a connection handles at once (one frame is always let in). */
  maxInFlightBytes?: number;
  /** A send (reply, error reply, request) waits while the socket has more than this queued. */
  sendHighWaterBytes?: number;
}

export const DEFAULT_MAX_FRAME_BYTES = 64 << 20;

export const DEFAULT_LIMITS: Required<LinkLimits> = {
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  preAuthMaxFrameBytes: 4096,
  maxUnauthenticated: 64,
  helloTimeoutMs: 5_000,
  maxInFlight: 256,
  maxInFlightBytes: 64 << 20,
  sendHighWaterBytes: 32 << 20,
};

/** `limits` over the defaults, each checked to be a positive integer. */
export function resolveLimits(limits: LinkLimits): Required<LinkLimits> {
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof LinkLimits)[]) {
    const v = limits[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`link limit ${k} must be a positive integer, got ${v}`);
    out[k] = v;
  }
  return out;
}

/** Command-line flags naming the limits (scheduler and server roles). */
export interface LinkLimitFlags {
  maxFrameMb?: number; preAuthMaxBytes?: number; maxUnauthenticated?: number; helloTimeoutMs?: number;
  maxInFlight?: number; maxInFlightMb?: number; sendHighWaterMb?: number;
}

export function limitsFromFlags(f: LinkLimitFlags): LinkLimits {
  const mb = (v?: number) => (v === undefined ? undefined : v * (1 << 20));
  return {
    maxFrameBytes: mb(f.maxFrameMb), preAuthMaxFrameBytes: f.preAuthMaxBytes, maxUnauthenticated: f.maxUnauthenticated,
    helloTimeoutMs: f.helloTimeoutMs, maxInFlight: f.maxInFlight, maxInFlightBytes: mb(f.maxInFlightMb), sendHighWaterBytes: mb(f.sendHighWaterMb),
  };
}

// ws fixes maxPayload per server, and before the hello it must be small: the receiver's limit is
// raised on the one connection that authenticated. It is a private field of ws 8, so check at
// load time that it is where we expect, rather than silently running with the small limit.
type WithReceiver = { _receiver?: { _maxPayload?: number } };
{
  const Receiver = (wsModule as unknown as { Receiver: new (o: object) => { _maxPayload?: number } }).Receiver;
  const probe = new Receiver({ maxPayload: 12345 });
  if (probe._maxPayload !== 12345) throw new Error('this ws version keeps maxPayload elsewhere: src/transport/limits.ts needs updating (tested with ws 8.23)');
}

/** Sets the largest frame `ws` accepts from now on, on this connection only. */
export function setMaxPayload(ws: Link, bytes: number): void {
  if (ws instanceof FramedSocket) { ws.maxPayload = bytes; return; }
  const r = (ws as unknown as WithReceiver)._receiver;
  if (!r || typeof r._maxPayload !== 'number') throw new Error('ws connection has no receiver to set maxPayload on');
  r._maxPayload = bytes;
}
