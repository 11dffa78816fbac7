// @kernel embedding_bag
// @doc out[b, outOffset + d] = pool over i in [offsets[b], offsets[b+1]) of rows[index[i], d]; pool = sum (mode 0) or mean (mode 1; an empty bag gives 0). rows[U,D] holds one table's pulled unique rows; out rows are outStride floats wide, so the 26 tables of DLRM write side by side into one [B, 27*D] buffer, or into [B][T][D] with outStride = T*D and outOffset = t*D.
// @param B u32
// @param D u32
// @param outStride u32
// @param outOffset u32
// @param mode u32
// @binding 1 rows read f32
// @binding 2 index read u32
// @binding 3 offsets read u32
// @binding 4 out write f32
// @workgroups min(ceil(B*D/256), 65535) 1 1

struct Params { B: u32, D: u32, outStride: u32, outOffset: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// One thread per output value (b, d), flattened so a workgroup covers 256/D bags when D is small;
// the grid-stride loop covers shapes beyond the 65535-workgroup dispatch limit.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let total = p.B * p.D;
  for (var g = gid.x; g < total; g += nwg.x * 256u) {
    let b = g / p.D;
    let d = g - b * p.D;
    let start = offsets[b];
    let end = offsets[b + 1u];
    var s = 0.0;
    for (var i = start; i < end; i++) {
      s += rows[index[i] * p.D + d];
    }
    if (p.mode == 1u && end > start) { s /= f32(end - start); }
    out[b * p.outStride + p.outOffset + d] = s;
  }
}
