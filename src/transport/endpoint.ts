// Listening and dialling, both ending in an authenticated Connection. The listener sends a
// Challenge first and reads nothing but a Hello with a valid MAC; anything else closes the link.
// Before the hello a connection may cost almost nothing: frames are limited to a few KB, only a
// hello is parsed, at most `maxUnauthenticated` such connections are held (counted from the TCP
// accept, so a peer that never finishes the HTTP upgrade counts too), each for `helloTimeoutMs`.
// With TLS credentials (tls.ts) the listener is an https server that demands a client certificate
// from the cluster CA: a peer without one fails the TLS handshake and nothing of it is read.
// A link is a WebSocket or, upgraded to `hybridps-frames` on the same port, a framed stream
// (framed-socket.ts, lighter; the dialer picks with `link`): admission, limits and the handshake
// are the same for both.
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Socket, AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import { Connection, type RequestHandler } from './connection.ts';
import type { FramedSocket, Link } from './framed-socket.ts';
import { acceptFramed, dialFramed, FRAMES_PROTOCOL } from './framed-upgrade.ts';
import { computeMac, newNonce, verifyMac } from './auth.ts';
import { DEFAULT_MAX_FRAME_BYTES, resolveLimits, setMaxPayload, type LinkLimits } from './limits.ts';
import { ConnectError } from './errors.ts';
import { dialTlsOptions, linkUrl, listenerTlsOptions, peerNameProblem, type TlsCredentials } from './tls.ts';
import { decodeHandshake, encode, ErrorCode, Role, type Body, type Envelope } from '../wire/codec.ts';

export { DEFAULT_MAX_FRAME_BYTES };
const HANDSHAKE_TIMEOUT_MS = 5_000;

export interface EndpointOptions extends LinkLimits {
  nodeId: string;
  secret: Uint8Array;
  requestTimeoutMs?: number;
  epoch?: () => number;
  /** TLS credentials: the listener serves wss:// and every dial is wss:// (mutual TLS). Absent: plain links. */
  tls?: TlsCredentials;
}

export interface ListenOptions extends EndpointOptions {
  host?: string;
  port?: number;
  /** Decides what to answer a valid Hello with (Welcome, or an error to refuse the peer). */
  onHello?: (hello: Extract<Body, { type: 'hello' }>, conn: Connection, env: Envelope) => Body | Promise<Body>;
  onConnection?: (conn: Connection) => void;
  onRequest: RequestHandler;
  /** A peer refused before authenticating: at most 10 calls a second, the rest counted in `stats` and summed up in the next call. */
  onRejected?: (why: string) => void;
  /**
   * HTTP upgrades to this protocol (not WebSocket) are handed over as raw sockets: the allreduce
   * data stream. The socket still counts as unauthenticated, under the hello timeout, until the
   * handler calls `authenticated()` after verifying the peer itself.
   */
  rawUpgrade?: { protocol: string; onSocket: (socket: Socket, head: Uint8Array, authenticated: () => void) => void };
}

/** The connection options the limits give (both ends of a link use the same). */
function connectionLimits(l: Required<LinkLimits>) {
  return { maxInFlight: l.maxInFlight, maxInFlightBytes: l.maxInFlightBytes, highWaterBytes: l.sendHighWaterBytes };
}

export class Listener {
  readonly connections = new Set<Connection>();
  /** Sockets accepted and not yet authenticated, with the timer that closes each. */
  private readonly unauthenticated = new Map<Socket, { timer: NodeJS.Timeout; ws?: Link }>();
  readonly stats = { refusedBusy: 0, helloTimeouts: 0, refusedHello: 0, refusedTls: 0 };
  /** TLS: the accepted TCP socket of each connection by its remote address (the upgrade hands over the TLS socket over it). */
  private readonly tcpOf = new Map<string, Socket>();
  /** Sockets handed to rawUpgrade: no longer the HTTP server's to close. */
  private readonly rawSockets = new Set<Socket>();
  /** Framed links (not ws's, so not in wss.clients), to cut off at close(). */
  private readonly framed = new Set<FramedSocket>();
  private reports = { second: 0, count: 0, unreported: 0 };

  private constructor(private readonly http: Server, private readonly wss: WebSocketServer, readonly url: string, private readonly opts: ListenOptions, private readonly limits: Required<LinkLimits>) {}

  /** Connections accepted and not yet authenticated. */
  get pendingHellos(): number { return this.unauthenticated.size; }

  static async listen(opts: ListenOptions): Promise<Listener> {
    const limits = resolveLimits(opts);
    const onPlainHttp = (_req: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('hybridps: WebSocket links only\n');
    };
    const http: Server = opts.tls
      ? createHttpsServer({ ...listenerTlsOptions(opts.tls, limits.helloTimeoutMs), maxHeaderSize: 8192 }, onPlainHttp)
      : createServer({ maxHeaderSize: 8192 }, onPlainHttp);
    // Until a connection authenticates, ws refuses (1009) any frame over the pre-auth limit as soon
    // as its header says so, before buffering it; the limit is raised for that connection at the hello.
    const wss = new WebSocketServer({ noServer: true, maxPayload: limits.preAuthMaxFrameBytes, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => { http.off('error', reject); resolve(); });
    });
    http.on('error', () => { /* per-socket errors end that socket */ });
    const addr = http.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const listener = new Listener(http, wss, `${opts.tls ? 'wss' : 'ws'}://${host}:${addr.port}`, opts, limits);
    http.on('connection', (socket: Socket) => listener.admit(socket));
    // A failed TLS handshake (no certificate, another CA, expired, not TLS at all): nothing was read.
    http.on('tlsClientError', (e: Error & { code?: string }, socket: TLSSocket) => {
      // Gone before a word of TLS (a startup-wait.ts probe, a port scan): not a refusal, as on a plain listener.
      if (e.code === 'ECONNRESET' && !socket.authorizationError) return;
      listener.stats.refusedTls++;
      // A certificate that fails verification ends the handshake with a bare hang-up; the reason is on the socket.
      const why = socket.authorizationError ? `its certificate was refused (${socket.authorizationError})` : `${e.code ?? 'error'}: ${e.message.split('\n')[0]}`;
      const from = socket.remoteAddress ? ` from ${socket.remoteAddress}:${socket.remotePort}` : '';
      listener.reportRejected(`TLS handshake${from} failed, nothing read: ${why}`);
    });
    http.on('upgrade', (req, stream: Socket, head) => {
      // Under TLS the limits and timers stay on the TCP socket (destroying it ends the TLS one).
      const socket = opts.tls ? listener.tcpOf.get(remoteKey(stream)) : stream;
      if (!socket || !listener.unauthenticated.has(socket)) { stream.destroy(); return; } // refused or timed out
      const badName = opts.tls && peerNameProblem(opts.tls, stream as TLSSocket);
      if (badName) { listener.stats.refusedTls++; listener.reportRejected(`TLS peer ${remoteKey(stream)} refused: ${badName}`); socket.destroy(); return; }
      const protocol = String(req.headers.upgrade ?? '').toLowerCase();
      if (protocol === FRAMES_PROTOCOL) {
        const link = acceptFramed(stream, head, limits.preAuthMaxFrameBytes);
        listener.framed.add(link);
        link.once('close', () => listener.framed.delete(link));
        listener.accept(link, socket);
        return;
      }
      const raw = opts.rawUpgrade;
      if (raw && protocol === raw.protocol) {
        listener.rawSockets.add(socket);
        socket.once('close', () => listener.rawSockets.delete(socket));
        raw.onSocket(stream, head, () => listener.authenticated(socket));
        return;
      }
      wss.handleUpgrade(req, stream, head, (ws) => listener.accept(ws, socket));
    });
    return listener;
  }

  /** A new TCP connection: refused when too many are unauthenticated, else timed until its hello. */
  private admit(socket: Socket): void {
    socket.on('error', () => {});
    if (this.unauthenticated.size >= this.limits.maxUnauthenticated) {
      this.stats.refusedBusy++;
      const why = `${this.unauthenticated.size} connections are waiting to authenticate (maxUnauthenticated ${this.limits.maxUnauthenticated}); retry later`;
      this.reportRejected(why);
      if (this.opts.tls) { socket.destroy(); return; } // no plain words inside a TLS connection
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${why.length + 1}\r\n\r\n${why}\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const timer = setTimeout(() => {
      this.stats.helloTimeouts++;
      const ws = this.unauthenticated.get(socket)?.ws;
      this.unauthenticated.delete(socket);
      if (ws) this.refuse(ws, `no valid hello within ${this.limits.helloTimeoutMs} ms`);
      else { this.reportRejected(`no WebSocket upgrade within ${this.limits.helloTimeoutMs} ms`); socket.destroy(); }
    }, this.limits.helloTimeoutMs);
    timer.unref();
    this.unauthenticated.set(socket, { timer });
    const key = this.opts.tls ? remoteKey(socket) : '';
    if (key) this.tcpOf.set(key, socket);
    socket.once('close', () => { clearTimeout(timer); this.unauthenticated.delete(socket); if (key) this.tcpOf.delete(key); });
  }

  /** A raw-upgrade socket's handler verified its peer: no longer under the hello timeout. */
  private authenticated(socket: Socket): void {
    const pending = this.unauthenticated.get(socket);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.unauthenticated.delete(socket);
  }

  /** onRejected, at most 10 times a second: a flood of connects must not become a flood of log lines. */
  reportRejected(why: string): void {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.reports.second) this.reports = { second, count: 0, unreported: this.reports.unreported };
    if (this.reports.count++ >= 10) { this.reports.unreported++; return; }
    const more = this.reports.unreported;
    this.reports.unreported = 0;
    this.opts.onRejected?.(more ? `${why} (and ${more} refusals since the last report)` : why);
  }

  private sendPlain(ws: Link, body: Body, requestId = 0): void {
    ws.send(encode({ requestId, reply: true, sender: this.opts.nodeId, epoch: this.opts.epoch?.() ?? 0, body }));
  }

  private refuse(ws: Link, why: string, requestId = 0): void {
    this.stats.refusedHello++;
    this.reportRejected(why);
    try { this.sendPlain(ws, { type: 'error', code: ErrorCode.Unauthenticated, message: why }, requestId); } catch { /* gone */ }
    ws.close(4001, 'unauthenticated');
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private accept(ws: Link, socket: Socket): void {
    const opts = this.opts;
    const pending = this.unauthenticated.get(socket);
    if (!pending) { ws.terminate(); return; }
    pending.ws = ws;
    const nonce = newNonce();
    ws.on('error', () => {
      // Before the hello (a frame over the pre-auth limit, say): ws has sent its close frame and
      // would go on reading, and dropping, whatever the peer sends; stop reading it instead.
      if (!this.unauthenticated.has(socket)) return;
      this.unauthenticated.delete(socket);
      clearTimeout(pending.timer);
      socket.end();
      process.nextTick(() => socket.pause()); // after ws's own resume, queued before this
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    // Everything up to the Connection's creation runs synchronously in this handler, so frames
    // that follow the hello reach the Connection, under the raised frame limit.
    ws.once('message', async (data: Buffer, isBinary: boolean) => {
      if (!this.unauthenticated.has(socket)) return; // timed out meanwhile
      let env: Envelope<Extract<Body, { type: 'hello' }>>;
      try {
        if (!isBinary) throw new Error('text frame');
        env = decodeHandshake(data as Buffer, 'hello');
      } catch (e) {
        return this.refuse(ws, `first frame is not a valid hello: ${(e as Error).message}`);
      }
      const b = env.body;
      if (!verifyMac(opts.secret, nonce, b.role, b.nodeId, b.mac)) return this.refuse(ws, 'bad credentials (HMAC mismatch)', env.requestId);
      clearTimeout(pending.timer);
      this.unauthenticated.delete(socket);
      setMaxPayload(ws, this.limits.maxFrameBytes);
      const conn = new Connection(ws, {
        nodeId: opts.nodeId, epoch: opts.epoch, requestTimeoutMs: opts.requestTimeoutMs, onRequest: opts.onRequest, ...connectionLimits(this.limits),
      });
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
      await conn.send({ requestId: env.requestId, reply: true, sender: opts.nodeId, epoch: opts.epoch?.() ?? 0, body: welcome }).catch(() => {});
      if (welcome.type === 'error') { void conn.close(4002, 'refused'); return; }
      opts.onConnection?.(conn);
    });
    this.sendPlain(ws, { type: 'challenge', nonce });
  }

  async close(): Promise<void> {
    for (const c of this.connections) void c.close(1001, 'shutting down');
    for (const ws of this.wss.clients) ws.terminate();
    for (const link of this.framed) link.terminate();
    for (const [socket, p] of this.unauthenticated) { clearTimeout(p.timer); socket.destroy(); }
    for (const socket of this.rawSockets) socket.destroy();
    this.unauthenticated.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

export interface DialOptions extends EndpointOptions {
  role: Role;
  /** Where this node listens, announced to the peer (servers, workers). */
  address?: string;
  /** Sent in the hello by a worker dialling its allreduce neighbour: the ring this link serves. */
  ringEpoch?: number;
  /** Sent in the hello by a member dialling the scheduler: the incarnation it last had (fencing, Member.since). */
  since?: () => number | undefined;
  onRequest?: RequestHandler;
  connectTimeoutMs?: number;
  /** The link's framing: a WebSocket, or a framed stream (framed-socket.ts, less CPU a frame). Default: linkKind('ws'). */
  link?: LinkKind;
}

export type LinkKind = 'ws' | 'frames';

/**
 * The framing for a link whose dialler prefers `preferred` (members' server links: frames; the
 * rest: ws), unless HYBRIDPS_LINK names one for every link: `ws` to step back from framed links,
 * `frames` to run all of them framed (the transport tests run over both that way).
 */
export function linkKind(preferred: LinkKind, env: NodeJS.ProcessEnv = process.env): LinkKind {
  const v = env.HYBRIDPS_LINK;
  if (v === undefined || v === '') return preferred;
  if (v === 'ws' || v === 'frames') return v;
  throw new Error(`HYBRIDPS_LINK must be ws or frames, got ${JSON.stringify(v)}`);
}

/**
 * RFC 6455 masks client frames so that a browser's script cannot make a proxy cache chosen bytes.
 * Our peers are authenticated processes, not browser scripts, so masking protects nothing here
 * and costs a copy-and-XOR of every payload on both ends; an all-zero mask makes ws skip it.
 */
const zeroMask = (mask: Buffer): void => { mask.fill(0); };

/** A connection's remote end as text: the TCP and the TLS socket over it give the same. */
const remoteKey = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;

/** Connects, answers the challenge, and resolves with the connection and the peer's welcome. */
export function dial(url: string, opts: DialOptions): Promise<{ conn: Connection; welcome: Extract<Body, { type: 'welcome' }> }> {
  return new Promise((resolve, reject) => {
    const limits = resolveLimits(opts);
    url = linkUrl(url, opts.tls);
    if (url.startsWith('wss://') && !opts.tls) {
      reject(new ConnectError(url, `${url} takes TLS links only and this node has no TLS credentials: pass --tls-cert, --tls-key and --tls-ca (or HYBRIDPS_TLS_CERT/_KEY/_CA)`));
      return;
    }
    // The challenge is tiny: until it is in, so is the frame limit (the welcome may be larger).
    const ws: Link = (opts.link ?? linkKind('ws')) === 'frames' ? dialFramed(url, opts.tls, limits.preAuthMaxFrameBytes) : new WebSocket(url, {
      maxPayload: limits.preAuthMaxFrameBytes, perMessageDeflate: false, generateMask: zeroMask,
      // ws hands these to tls.connect; its own typing of checkServerIdentity is not Node's.
      ...(opts.tls ? dialTlsOptions(opts.tls) as object : {}),
    });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new ConnectError(url, `connecting to ${url} timed out`)), opts.connectTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    const hint = (m: string) => / 503$/.test(m) ? ' (too many connections are waiting to authenticate there; retry later)'
      : opts.tls && /hang up|ECONNRESET/.test(m) ? ' (under TLS: the peer may have refused this node\'s certificate; is it from the cluster CA, unexpired, with the cluster name?)' : '';
    ws.on('error', (e: Error) => fail(new ConnectError(url, `cannot connect to ${url}: ${e.message}${hint(e.message)}`)));
    ws.on('close', (code: number, reason: Buffer) => fail(new ConnectError(url, `${url} closed the connection during the handshake (${code} ${reason})`)));
    ws.once('message', (data: Buffer) => {
      let challenge: Envelope<Extract<Body, { type: 'challenge' }>>;
      try { challenge = decodeHandshake(data as Buffer, 'challenge'); } catch (e) { return fail(new ConnectError(url, `bad challenge from ${url}: ${(e as Error).message}`)); }
      setMaxPayload(ws, limits.maxFrameBytes);
      const conn = new Connection(ws, { nodeId: opts.nodeId, epoch: opts.epoch, requestTimeoutMs: opts.requestTimeoutMs, onRequest: opts.onRequest, ...connectionLimits(limits) });
      conn.peerId = challenge.sender;
      const mac = computeMac(opts.secret, challenge.body.nonce, opts.role, opts.nodeId);
      conn.request({ type: 'hello', role: opts.role, nodeId: opts.nodeId, address: opts.address ?? '', mac, ringEpoch: opts.ringEpoch, since: opts.since?.() }, opts.connectTimeoutMs ?? HANDSHAKE_TIMEOUT_MS)
        .then((reply) => { // a welcome: any other answer rejects (UnexpectedReplyError)
          settled = true;
          clearTimeout(timer);
          resolve({ conn, welcome: reply.body });
        })
        .catch((e: Error) => fail(e));
    });
  });
}
