// Opening a framed link (framed-socket.ts) on a listener's port: an HTTP upgrade to
// `hybridps-frames`, the way the ring's data stream opens (allreduce/data-handshake.ts), so one
// port, one TLS setup and the same pre-auth admission serve WebSocket and framed links alike.
// After the 101 the link is a FramedSocket, and the Challenge/Hello exchange runs over it as it
// does over a WebSocket (endpoint.ts).
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { FramedSocket } from './framed-socket.ts';
import { dialTlsOptions, type TlsCredentials } from './tls.ts';

export const FRAMES_PROTOCOL = 'hybridps-frames';
/** An HTTP response longer than this without its end is not a hybridps listener's. */
const MAX_RESPONSE_BYTES = 4096;

/** The listener's side: answers the upgrade and hands back the link, reading frames from `head` on. */
export function acceptFramed(stream: Socket, head: Uint8Array, maxPayload: number): FramedSocket {
  stream.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${FRAMES_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
  const link = new FramedSocket(stream, maxPayload);
  link.start(head);
  return link;
}

/**
 * The dialling side: connects to `url` (ws:// plain, wss:// TLS with `tls`), asks for the upgrade,
 * and returns the link at once; it reads frames once the 101 is in. A refusal (a 503 from a busy
 * listener, a peer of another version) is an 'error' naming the status, then 'close' (1006).
 */
export function dialFramed(url: string, tls: TlsCredentials | undefined, maxPayload: number): FramedSocket {
  const u = new URL(url);
  const where = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
  // Plain TCP reads through onread (framed-socket.ts: no chunk per read, frames read in place).
  // Node asks for the first read's buffer while connecting, before the link exists.
  let link: FramedSocket | null = null;
  const onread = { buffer: () => link?.readTarget() ?? Buffer.allocUnsafe(16 << 10), callback: (n: number, buf: Uint8Array) => { link!.onRead(n, buf); return true; } };
  const socket: Socket = tls ? tlsConnect({ ...where, ...dialTlsOptions(tls) }) : connect({ ...where, onread });
  link = new FramedSocket(socket, maxPayload);
  const framed = link;
  socket.once(tls ? 'secureConnect' : 'connect', () => {
    socket.write(`GET / HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: ${FRAMES_PROTOCOL}\r\n\r\n`);
  });
  let acc = Buffer.alloc(0);
  const onResponse = (chunk: Buffer) => {
    acc = Buffer.concat([acc, chunk]);
    const end = acc.indexOf('\r\n\r\n');
    if (end < 0) {
      if (acc.length > MAX_RESPONSE_BYTES) refuse('no end to the HTTP response (is it a hybridps listener?)');
      return;
    }
    socket.off('data', onResponse);
    const status = acc.subarray(0, end).toString('latin1').split('\r\n')[0]!;
    const m = /^HTTP\/1\.1 (\d{3})/.exec(status);
    if (m?.[1] !== '101') return refuse(`Unexpected server response: ${m?.[1] ?? status.slice(0, 80)}`);
    framed.start(acc.subarray(end + 4));
  };
  const refuse = (why: string) => { socket.off('data', onResponse); framed.emit('error', new Error(why)); socket.destroy(); };
  socket.on('data', onResponse);
  return framed;
}
