// @kernel segment_sum_tables
// @doc segment_sum for T tables of the same dim D in one dispatch (the backward of embedding_bag_tables): for the u-th unique row of table t, grads[r_t + u*D + d] = scale * sum over occurrences i in [csrOffsets[c_t + u], csrOffsets[c_t + u + 1]) of s_b * dout[b * outStride + outOffset + t*D + d], b = csrItems[x_t + i]; s_b = 1 (mode 0) or 1 / bag size of b from bagOffsets[o_t + b ..] (mode 1). Workgroup row y is table t (directory `dir`, see embedding_bag_tables); Umax is the largest unique-row count of a table (the runner's scope variable Umax). Fixed order: deterministic, no atomics. Padding between tables in grads is not written. Every gradient is multiplied by `scale` as it is written (the worker step's gradient scale, local batch / global batch: no JS pass over the rows).
// @param Umax u32
// @param D u32
// @param T u32
// @param outStride u32
// @param outOffset u32
// @param mode u32
// @param scale f32 = 1
// @binding 1 csrOffsets read u32
// @binding 2 csrItems read u32
// @binding 3 bagOffsets read u32
// @binding 4 dir read u32
// @binding 5 dout read f32
// @binding 6 grads write f32
// @workgroups min(ceil(Umax*D/2048), 65535) T 1

struct Params { Umax: u32, D: u32, T: u32, outStride: u32, outOffset: u32, mode: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csrOffsets: array<u32>;
@group(0) @binding(2) var<storage, read> csrItems: array<u32>;
@group(0) @binding(3) var<storage, read> bagOffsets: array<u32>;
@group(0) @binding(4) var<storage, read> dir: array<u32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

// Workgroup row y is table t (its directory entry read once, outside the loop); threads walk the
// table's U_t * D gradient values (u, d), d fastest, about 8 per thread (x count Umax*D/2048) so
// the five directory loads are amortized.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = wid.y;
  let rowBase = dir[8u * t];
  let idxBase = dir[8u * t + 1u];
  let offBase = dir[8u * t + 2u];
  let coBase = dir[8u * t + 3u];
  let col = p.outOffset + t * p.D;
  let total = dir[8u * t + 4u] * p.D;
  for (var g = gid.x; g < total; g += nwg.x * 256u) {
    let u = g / p.D;
    let d = g - u * p.D;
    var s = 0.0;
    for (var i = csrOffsets[coBase + u]; i < csrOffsets[coBase + u + 1u]; i++) {
      let b = csrItems[idxBase + i];
      var v = dout[b * p.outStride + col + d];
      if (p.mode == 1u) { v /= f32(max(bagOffsets[offBase + b + 1u] - bagOffsets[offBase + b], 1u)); }
      s += v;
    }
    grads[rowBase + u * p.D + d] = p.scale * s;
  }
}
