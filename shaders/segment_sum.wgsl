// @kernel segment_sum
// @doc grads[u, d] = scale * sum over occurrences i in [csrOffsets[u], csrOffsets[u+1]) of s_b * dout[b * outStride + outOffset + d], b = csrItems[i] (the sample of that occurrence); s_b = 1 for sum pooling (mode 0), 1 / bag size of b (from bagOffsets) for mean pooling (mode 1). One gradient per unique row, in a fixed order: deterministic, no atomics. bagOffsets is read only in mode 1 (bind any buffer otherwise). Every gradient is multiplied by `scale` as it is written (the worker step's gradient scale, local batch / global batch: no JS pass over the rows).
// @param U u32
// @param D u32
// @param outStride u32
// @param outOffset u32
// @param mode u32
// @param scale f32 = 1
// @binding 1 csrOffsets read u32
// @binding 2 csrItems read u32
// @binding 3 bagOffsets read u32
// @binding 4 dout read f32
// @binding 5 grads write f32
// @workgroups min(ceil(U*D/256), 65535) 1 1

struct Params { U: u32, D: u32, outStride: u32, outOffset: u32, mode: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csrOffsets: array<u32>;
@group(0) @binding(2) var<storage, read> csrItems: array<u32>;
@group(0) @binding(3) var<storage, read> bagOffsets: array<u32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> grads: array<f32>;

// One thread per gradient value (u, d), flattened (see embedding_bag); each sums its row's
// occurrences in CSR order, so the result does not depend on scheduling.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let total = p.U * p.D;
  for (var g = gid.x; g < total; g += nwg.x * 256u) {
    let u = g / p.D;
    let d = g - u * p.D;
    var s = 0.0;
    for (var i = csrOffsets[u]; i < csrOffsets[u + 1u]; i++) {
      let b = csrItems[i];
      var v = dout[b * p.outStride + p.outOffset + d];
      if (p.mode == 1u) { v /= f32(max(bagOffsets[b + 1u] - bagOffsets[b], 1u)); }
      s += v;
    }
    grads[u * p.D + d] = p.scale * s;
  }
}
