// The data stream's socket, dialled by the receiving rank: plain TCP, or TLS when the ring has
// credentials (the listener is then an https server that demands a client certificate from the
// cluster CA, transport/tls.ts). Either way reads land through `onread` in the receiver's own
// preallocated buffer: Node's TLS socket supports it too, so TLS adds the cipher and a copy out
// of OpenSSL, not a buffer per read (bench/RESULTS.md, "session 6: TLS").
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { dialTlsOptions, type TlsCredentials } from '../transport/tls.ts';

/** Dials `url` (ws:// or wss://, the left neighbour's ring listener); `ready` runs once bytes may be written. */
export function connectDataSocket(url: URL, tls: TlsCredentials | undefined, onread: OnReadOpts, ready: () => void): Socket {
  const where = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port), onread };
  if (!tls && url.protocol === 'wss:') {
    const s = connect({ ...where, port: 0 }); // fails at once: the error below is what the caller sees
    queueMicrotask(() => s.destroy(new Error(`${url.href} takes TLS streams only and this worker has no TLS credentials: pass --tls-cert, --tls-key and --tls-ca`)));
    return s;
  }
  const socket: Socket = tls ? tlsConnect({ ...where, ...dialTlsOptions(tls) }) : connect(where);
  socket.setNoDelay(true);
  socket.once(tls ? 'secureConnect' : 'connect', ready);
  return socket;
}
