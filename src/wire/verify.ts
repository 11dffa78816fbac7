// A bounds-checking verifier for received frames. The FlatBuffers TypeScript runtime reads
// whatever offsets a buffer claims, so before any generated accessor touches a peer's bytes we
// walk every table, vector and string we are going to read and check it lies inside the buffer.
// Specs mirror fbs/hybridps.fbs; a field's index is its position in the schema (vtable slot).

export type FieldSpec =
  | { k: 'scalar'; size: 1 | 2 | 4 | 8 }
  | { k: 'string' }
  | { k: 'vector'; elem: 1 | 2 | 4 | 8 }
  | { k: 'table'; spec: TableSpec }
  | { k: 'tables'; spec: TableSpec }
  | { k: 'unionType' }
  | { k: 'union'; specs: (TableSpec | undefined)[] };

export type TableSpec = FieldSpec[];

export class VerifyError extends Error {}

const MAX_DEPTH = 8;

export function verifyRoot(bytes: Uint8Array, spec: TableSpec): number {
  if (bytes.length < 8) throw new VerifyError(`frame of ${bytes.length} bytes is shorter than a FlatBuffer header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const root = dv.getUint32(0, true);
  verifyTable(dv, root, spec, 0);
  return root;
}

function need(dv: DataView, pos: number, len: number, what: string): void {
  if (!(pos >= 0 && len >= 0 && pos + len <= dv.byteLength)) {
    throw new VerifyError(`${what} at ${pos}+${len} lies outside the ${dv.byteLength}-byte frame`);
  }
}

function verifyTable(dv: DataView, pos: number, spec: TableSpec, depth: number): void {
  if (depth > MAX_DEPTH) throw new VerifyError('tables nested too deeply');
  need(dv, pos, 4, 'table');
  if (pos % 4 !== 0) throw new VerifyError(`table at ${pos} is misaligned`);
  const vt = pos - dv.getInt32(pos, true);
  need(dv, vt, 4, 'vtable');
  const vtSize = dv.getUint16(vt, true);
  const objSize = dv.getUint16(vt + 2, true);
  if (vtSize < 4 || vtSize % 2 !== 0) throw new VerifyError(`vtable size ${vtSize} is invalid`);
  need(dv, vt, vtSize, 'vtable');
  need(dv, pos, objSize, 'table body');
  let unionType = 0;
  for (let i = 0; i < spec.length; i++) {
    const slot = 4 + 2 * i;
    if (slot + 2 > vtSize) break;
    const off = dv.getUint16(vt + slot, true);
    if (off === 0) continue;
    const f = spec[i]!;
    const size = f.k === 'scalar' ? f.size : f.k === 'unionType' ? 1 : 4;
    if (off + size > objSize) throw new VerifyError(`field ${i} lies outside its table`);
    const fieldPos = pos + off;
    switch (f.k) {
      case 'scalar':
        break;
      case 'unionType':
        unionType = dv.getUint8(fieldPos);
        break;
      case 'string':
      case 'vector': {
        const target = fieldPos + dv.getUint32(fieldPos, true);
        need(dv, target, 4, 'vector length');
        const n = dv.getUint32(target, true);
        const elem = f.k === 'string' ? 1 : f.elem;
        need(dv, target + 4, n * elem, f.k === 'string' ? 'string' : 'vector');
        break;
      }
      case 'table':
        verifyTable(dv, fieldPos + dv.getUint32(fieldPos, true), f.spec, depth + 1);
        break;
      case 'tables': {
        const target = fieldPos + dv.getUint32(fieldPos, true);
        need(dv, target, 4, 'vector length');
        const n = dv.getUint32(target, true);
        need(dv, target + 4, n * 4, 'table vector');
        for (let j = 0; j < n; j++) {
          const ep = target + 4 + 4 * j;
          verifyTable(dv, ep + dv.getUint32(ep, true), f.spec, depth + 1);
        }
        break;
      }
      case 'union': {
        const s = f.specs[unionType];
        if (!s) throw new VerifyError(`unknown body type ${unionType}`);
        verifyTable(dv, fieldPos + dv.getUint32(fieldPos, true), s, depth + 1);
        break;
      }
    }
  }
}
