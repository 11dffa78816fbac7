// @kernel embedding_bag_tables
// @doc embedding_bag for T tables of the same dim D in one dispatch: out[b, outOffset + t*D + d] = pool over i in [offsets[o_t + b], offsets[o_t + b + 1]) of rows[r_t + index[x_t + i] * D + d], pool = sum (mode 0) or mean (mode 1; an empty bag gives 0). The per-step buffers hold every table's data at the offsets of the table directory `dir` (8 u32 per table: r_t rows, x_t index and csrItems, o_t bag offsets, c_t csrOffsets, U_t, unique-row prefix, NNZ_t, dim), which the model runner builds and binds as tables.dir (with tables.rows, tables.index, tables.offsets).
// @param B u32
// @param D u32
// @param T u32
// @param outStride u32
// @param outOffset u32
// @param mode u32
// @binding 1 rows read f32
// @binding 2 index read u32
// @binding 3 offsets read u32
// @binding 4 dir read u32
// @binding 5 out write f32
// @workgroups min(ceil(B*D/2048), 65535) T 1

struct Params { B: u32, D: u32, T: u32, outStride: u32, outOffset: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read> dir: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// Workgroup row y is table t (its directory entry is read once, outside the loop); threads walk
// the output values (b, d), d fastest, so a warp reads consecutive columns of a row and writes
// consecutive floats of the output row. About 8 values per thread (the x count is B*D/2048): the
// four directory loads are amortized (one value per thread made this kernel 30% slower than 26
// per-table dispatches on lavapipe).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = wid.y;
  let rowBase = dir[8u * t];
  let idxBase = dir[8u * t + 1u];
  let offBase = dir[8u * t + 2u];
  let col = p.outOffset + t * p.D;
  let total = p.B * p.D;
  for (var g = gid.x; g < total; g += nwg.x * 256u) {
    let b = g / p.D;
    let d = g - b * p.D;
    let start = offsets[offBase + b];
    let end = offsets[offBase + b + 1u];
    var s = 0.0;
    for (var i = start; i < end; i++) {
      s += rows[rowBase + index[idxBase + i] * p.D + d];
    }
    if (p.mode == 1u && end > start) { s /= f32(end - start); }
    out[b * p.outStride + col + d] = s;
  }
}
