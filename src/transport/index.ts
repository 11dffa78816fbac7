export { Connection, type RequestHandler } from './connection.ts';
export { RemoteError, RpcError, TransportError, ConnectError, ConnectionClosedError, RequestTimeoutError, errorCodeOf } from './errors.ts';
export { Listener, dial, DEFAULT_MAX_FRAME_BYTES, type ListenOptions, type DialOptions, type EndpointOptions, type LinkKind, linkKind } from './endpoint.ts';
export { FramedSocket, FrameError, type Link } from './framed-socket.ts';
export { DEFAULT_LIMITS, limitsFromFlags, type LinkLimits, type LinkLimitFlags } from './limits.ts';
export { Peer, type PeerOptions } from './peer.ts';
export { loadSecret, generateSecret, computeMac } from './auth.ts';
export { loadTls, TlsConfigError, UNENCRYPTED_WARNING, DEFAULT_TLS_NAME, type TlsCredentials, type TlsFiles } from './tls.ts';
