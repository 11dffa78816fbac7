// A bounds-checking verifier for received frames. The FlatBuffers TypeScript runtime reads
// whatever offsets a buffer claims, so before any generated accessor touches a peer's bytes we
// walk every table, vector and string we are going to read and check it lies inside the buffer.
// Specs mirror fbs/hybridps.fbs; a field's index is its position in the schema (vtable slot).
//
// Bounds alone are not enough: offsets may alias, so N vector entries pointing at one table whose
// M entries point at one table make a 100 KB frame describe N x M tables, and the walk (and the
// decoder after it) does N x M work and allocation. So every table, vector and string visited is
// charged the bytes it occupies against a budget of the frame's length. A frame our encoder wrote
// never shares bytes between two objects, so its charges sum to less than its length; a frame
// whose references overlap runs out and is refused. Work and decoded size are O(frame bytes).

export type FieldSpec =
  | { k: 'scalar'; size: 1 | 2 | 4 | 8 }
  | { k: 'string' }
  | { k: 'vector'; elem: 1 | 2 | 4 | 8 }
  | { k: 'strings' }
  | { k: 'table'; spec: TableSpec }
  | { k: 'tables'; spec: TableSpec }
  | { k: 'unionType' }
  | { k: 'union'; specs: (TableSpec | undefined)[] };

export type TableSpec = FieldSpec[];

export class VerifyError extends Error {}

const MAX_DEPTH = 8;

/** One walk over one frame: its bytes and what is left of its budget. */
class Walk {
  readonly dv: DataView;
  budget: number;
  constructor(bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.budget = bytes.byteLength;
  }

  need(pos: number, len: number, what: string): void {
    if (!(pos >= 0 && len >= 0 && pos + len <= this.dv.byteLength)) {
      throw new VerifyError(`${what} at ${pos}+${len} lies outside the ${this.dv.byteLength}-byte frame`);
    }
  }

  /** Takes `n` bytes of the budget for an object the walk visits. */
  charge(n: number, what: string, pos: number): void {
    this.budget -= n;
    if (this.budget < 0) {
      throw new VerifyError(`${what} at ${pos} overlaps bytes already used by another object (aliased offsets: the frame describes more than its ${this.dv.byteLength} bytes)`);
    }
  }

  /** Checks and charges the vector or string an offset at `at` points to; returns its length. */
  vector(at: number, elem: number, what: string): number {
    const target = at + this.dv.getUint32(at, true);
    this.need(target, 4, `${what} length`);
    const n = this.dv.getUint32(target, true);
    this.need(target + 4, n * elem, what);
    this.charge(4 + n * elem, what, target);
    return target;
  }

  table(pos: number, spec: TableSpec, depth: number): void {
    const dv = this.dv;
    if (depth > MAX_DEPTH) throw new VerifyError('tables nested too deeply');
    this.need(pos, 4, 'table');
    if (pos % 4 !== 0) throw new VerifyError(`table at ${pos} is misaligned`);
    const vt = pos - dv.getInt32(pos, true);
    this.need(vt, 4, 'vtable');
    const vtSize = dv.getUint16(vt, true);
    const objSize = dv.getUint16(vt + 2, true);
    if (vtSize < 4 || vtSize % 2 !== 0) throw new VerifyError(`vtable size ${vtSize} is invalid`);
    if (objSize < 4) throw new VerifyError(`table size ${objSize} is smaller than its offset to the vtable`);
    this.need(vt, vtSize, 'vtable');
    this.need(pos, objSize, 'table body');
    // Vtables are shared by design (the builder deduplicates them) and cost O(fields): not charged.
    this.charge(objSize, 'table', pos);
    let unionType = 0;
    for (let i = 0; i < spec.length; i++) {
      const slot = 4 + 2 * i;
      if (slot + 2 > vtSize) break;
      const off = dv.getUint16(vt + slot, true);
      if (off === 0) continue;
      const f = spec[i]!;
      const size = f.k === 'scalar' ? f.size : f.k === 'unionType' ? 1 : 4;
      if (off + size > objSize) throw new VerifyError(`field ${i} lies outside its table`);
      const at = pos + off;
      switch (f.k) {
        case 'scalar':
          break;
        case 'unionType':
          unionType = dv.getUint8(at);
          break;
        case 'string':
          this.vector(at, 1, 'string');
          break;
        case 'vector':
          this.vector(at, f.elem, 'vector');
          break;
        case 'strings': {
          const target = this.vector(at, 4, 'string vector');
          const n = dv.getUint32(target, true);
          for (let j = 0; j < n; j++) this.vector(target + 4 + 4 * j, 1, 'string');
          break;
        }
        case 'table':
          this.table(at + dv.getUint32(at, true), f.spec, depth + 1);
          break;
        case 'tables': {
          const target = this.vector(at, 4, 'table vector');
          const n = dv.getUint32(target, true);
          for (let j = 0; j < n; j++) {
            const ep = target + 4 + 4 * j;
            this.table(ep + dv.getUint32(ep, true), f.spec, depth + 1);
          }
          break;
        }
        case 'union': {
          const s = f.specs[unionType];
          if (!s) throw new VerifyError(`unknown body type ${unionType}`);
          this.table(at + dv.getUint32(at, true), s, depth + 1);
          break;
        }
      }
    }
  }
}

/**
 * Checks that every object `spec` reaches from the root lies inside `bytes` and that no two of
 * them share bytes; returns the root table's position. Work is O(bytes.length).
 */
export function verifyRoot(bytes: Uint8Array, spec: TableSpec): number {
  if (bytes.length < 8) throw new VerifyError(`frame of ${bytes.length} bytes is shorter than a FlatBuffer header`);
  const w = new Walk(bytes);
  const root = w.dv.getUint32(0, true);
  w.charge(8, 'header', 0); // root offset and file identifier
  w.table(root, spec, 0);
  return root;
}
