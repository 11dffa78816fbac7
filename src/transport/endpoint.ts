// Listening and dialling, both ending in an authenticated Connection. The listener sends a
// Challenge first and reads nothing but a Hello with a valid MAC; anything else closes the link.
import { WebSocketServer, WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { Connection, type ConnectionOptions, type RequestHandler } from './connection.ts';
import { computeMac, newNonce, verifyMac } from './auth.ts';
import { ConnectError } from './errors.ts';
import { decode, encode, ErrorCode, Role, type Body, type Envelope } from '../wire/codec.ts';

export const DEFAULT_MAX_FRAME_BYTES = 64 << 20;
const HANDSHAKE_TIMEOUT_MS = 5_000;

export interface EndpointOptions {
  nodeId: string;
  secret: Uint8Array;
  maxFrameBytes?: number;
  requestTimeoutMs?: number;
  epoch?: () => number;
}

export interface ListenOptions extends EndpointOptions {
  host?: string;
  port?: number;
  /** Decides what to answer a valid Hello with (Welcome, or an error to refuse the peer). */
  onHello?: (hello: Extract<Body, { type: 'hello' }>, conn: Connection, env: Envelope) => Body | Promise<Body>;
  onConnection?: (conn: Connection) => void;
  onRequest: RequestHandler;
  onRejected?: (why: string) => void;
}

export class Listener {
  readonly connections = new Set<Connection>();
  private constructor(private readonly wss: WebSocketServer, readonly url: string) {}

  static async listen(opts: ListenOptions): Promise<Listener> {
    const wss = new WebSocketServer({
      host: opts.host ?? '127.0.0.1', port: opts.port ?? 0,
      maxPayload: opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, perMessageDeflate: false,
    });
    await new Promise<void>((resolve, reject) => { wss.once('listening', resolve); wss.once('error', reject); });
    const addr = wss.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const listener = new Listener(wss, `ws://${host}:${addr.port}`);
    wss.on('connection', (ws) => listener.accept(ws, opts));
    return listener;
  }

  private accept(ws: WebSocket, opts: ListenOptions): void {
    const nonce = newNonce();
    const sendPlain = (body: Body, requestId = 0) =>
      ws.send(encode({ requestId, reply: true, sender: opts.nodeId, epoch: opts.epoch?.() ?? 0, body }));
    const refuse = (why: string, requestId = 0) => {
      opts.onRejected?.(why);
      try { sendPlain({ type: 'error', code: ErrorCode.Unauthenticated, message: why }, requestId); } catch { /* gone */ }
      ws.close(4001, 'unauthenticated');
      setTimeout(() => ws.terminate(), 1000).unref();
    };
    const timer = setTimeout(() => refuse('no valid hello within the handshake timeout'), HANDSHAKE_TIMEOUT_MS);
    ws.on('error', () => {});
    ws.once('message', async (data, isBinary) => {
      clearTimeout(timer);
      let env: Envelope;
      try {
        if (!isBinary) throw new Error('text frame');
        env = decode(data as Buffer);
      } catch (e) {
        return refuse(`first frame is not a valid hello: ${(e as Error).message}`);
      }
      const b = env.body;
      if (b.type !== 'hello') return refuse(`expected hello, got ${b.type}`, env.requestId);
      if (!verifyMac(opts.secret, nonce, b.role, b.nodeId, b.mac)) return refuse('bad credentials (HMAC mismatch)', env.requestId);
      const conn = new Connection(ws, { nodeId: opts.nodeId, epoch: opts.epoch, requestTimeoutMs: opts.requestTimeoutMs, onRequest: opts.onRequest });
      conn.peerId = b.nodeId;
      conn.peerRole = b.role;
      conn.peerAddress = b.address;
      conn.peerRingEpoch = b.ringEpoch;
      this.connections.add(conn);
      void conn.closed.then(() => this.connections.delete(conn));
      let welcome: Body;
      try {
        welcome = opts.onHello ? await opts.onHello(b, conn, env) : { type: 'welcome', nodeId: opts.nodeId, view: null };
      } catch (e) {
        welcome = { type: 'error', code: ErrorCode.Conflict, message: (e as Error).message };
      }
      await conn.send({ requestId: env.requestId, reply: true, sender: opts.nodeId, epoch: opts.epoch?.() ?? 0, body: welcome });
      if (welcome.type === 'error') { void conn.close(4002, 'refused'); return; }
      opts.onConnection?.(conn);
    });
    sendPlain({ type: 'challenge', nonce });
  }

  async close(): Promise<void> {
    for (const c of this.connections) void c.close(1001, 'shutting down');
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

export interface DialOptions extends EndpointOptions {
  role: Role;
  /** Where this node listens, announced to the peer (servers, workers). */
  address?: string;
  /** Sent in the hello by a worker dialling its allreduce neighbour: the ring this link serves. */
  ringEpoch?: number;
  onRequest?: RequestHandler;
  connectTimeoutMs?: number;
}

/**
 * RFC 6455 masks client frames so that a browser's script cannot make a proxy cache chosen bytes.
 * Our peers are authenticated processes, not browser scripts, so masking protects nothing here
 * and costs a copy-and-XOR of every payload on both ends; an all-zero mask makes ws skip it.
 */
const zeroMask = (mask: Buffer): void => { mask.fill(0); };

/** Connects, answers the challenge, and resolves with the connection and the peer's welcome. */
export function dial(url: string, opts: DialOptions): Promise<{ conn: Connection; welcome: Extract<Body, { type: 'welcome' }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, perMessageDeflate: false, generateMask: zeroMask });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new ConnectError(url, `connecting to ${url} timed out`)), opts.connectTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    ws.on('error', (e) => fail(new ConnectError(url, `cannot connect to ${url}: ${e.message}`)));
    ws.on('close', (code, reason) => fail(new ConnectError(url, `${url} closed the connection during the handshake (${code} ${reason})`)));
    ws.once('message', (data) => {
      let challenge: Envelope;
      try { challenge = decode(data as Buffer); } catch (e) { return fail(new ConnectError(url, `bad challenge from ${url}: ${(e as Error).message}`)); }
      if (challenge.body.type !== 'challenge') return fail(new ConnectError(url, `expected a challenge from ${url}, got ${challenge.body.type}`));
      const conn = new Connection(ws, { nodeId: opts.nodeId, epoch: opts.epoch, requestTimeoutMs: opts.requestTimeoutMs, onRequest: opts.onRequest });
      conn.peerId = challenge.sender;
      const mac = computeMac(opts.secret, challenge.body.nonce, opts.role, opts.nodeId);
      conn.request({ type: 'hello', role: opts.role, nodeId: opts.nodeId, address: opts.address ?? '', mac, ringEpoch: opts.ringEpoch }, opts.connectTimeoutMs ?? HANDSHAKE_TIMEOUT_MS)
        .then((reply) => { // a welcome: any other answer rejects (UnexpectedReplyError)
          settled = true;
          clearTimeout(timer);
          resolve({ conn, welcome: reply.body });
        })
        .catch((e: Error) => fail(e));
    });
  });
}
