// A link to one remote node that (re)connects on demand with exponential backoff, so callers
// just send requests; a request that fails because the link dropped is the caller's to retry.
import type { Connection } from './connection.ts';
import { ConnectError, ConnectionClosedError } from './errors.ts';
import { dial, type DialOptions } from './endpoint.ts';
import type { Body, BodyOf, Envelope } from '../wire/codec.ts';
import type { ReplyType, RequestBody } from '../wire/replies.ts';

export interface PeerOptions extends DialOptions {
  /** Attempts per connect before giving up (each waits base * 2^i, capped, with jitter). */
  connectAttempts?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  onConnect?: (conn: Connection, welcome: Extract<Body, { type: 'welcome' }>) => void;
}

export class Peer {
  private conn: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  private closedByUs = false;

  constructor(readonly url: string, private readonly opts: PeerOptions) {}

  get connected(): boolean { return !!this.conn?.isOpen; }
  get current(): Connection | null { return this.conn; }

  connection(): Promise<Connection> {
    if (this.conn?.isOpen) return Promise.resolve(this.conn);
    if (this.closedByUs) return Promise.reject(new ConnectionClosedError(`link to ${this.url} was closed`));
    this.connecting ??= this.connectWithBackoff().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private async connectWithBackoff(): Promise<Connection> {
    const attempts = this.opts.connectAttempts ?? 8;
    const base = this.opts.backoffBaseMs ?? 50;
    const max = this.opts.backoffMaxMs ?? 2_000;
    let lastErr: Error = new Error('no attempt made');
    for (let i = 0; i < attempts && !this.closedByUs; i++) {
      try {
        const { conn, welcome } = await dial(this.url, this.opts);
        this.conn = conn;
        this.opts.onConnect?.(conn, welcome);
        return conn;
      } catch (e) {
        lastErr = e as Error;
        const delay = Math.min(max, base * 2 ** i) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    throw new ConnectError(this.url, `could not reach ${this.url} after ${attempts} attempts: ${lastErr.message}`);
  }

  /** Connection.request over this link (connecting first): the reply's type follows the request's. */
  async request<B extends RequestBody, R extends ReplyType<B['type']> = ReplyType<B['type']>>(
    body: B, timeoutMs?: number, expect?: R,
  ): Promise<Envelope<BodyOf<R>>> {
    const c = await this.connection();
    return c.request(body, timeoutMs, expect);
  }

  async notify(body: Body): Promise<void> {
    const c = await this.connection();
    return c.notify(body);
  }

  async close(): Promise<void> {
    this.closedByUs = true;
    if (this.conn) await this.conn.close(1000, 'bye');
  }
}
