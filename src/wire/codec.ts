// The wire codec's public face: the message types (messages.ts), Envelope -> bytes (encode.ts)
// and bytes -> Envelope (decode.ts: verified first, work bounded by the frame's size).
export * from './messages.ts';
export { encode, encodeWithHole, type FrameHole } from './encode.ts';
export { decode, decodeHandshake } from './decode.ts';
