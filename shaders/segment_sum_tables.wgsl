// @kernel segment_sum_tables
// @doc segment_sum for T tables of the same dim D in one dispatch (the backward of embedding_bag_tables): for the u-th unique row of table t, grads[r_t + u*D + d] = sum over occurrences i in [csrOffsets[c_t + u], csrOffsets[c_t + u + 1]) of s_b * dout[b * outStride + outOffset + t*D + d], b = csrItems[x_t + i]; s_b = 1 (mode 0) or 1 / bag size of b from bagOffsets[o_t + b ..] (mode 1). U is the total of unique rows over the tables; the thread of global unique row q finds its table by binary search in the unique-row prefixes of the directory `dir` (see embedding_bag_tables). Fixed order: deterministic, no atomics. Rows of padding between tables in grads are not written.
// @param U u32
// @param D u32
// @param T u32
// @param outStride u32
// @param outOffset u32
// @param mode u32
// @binding 1 csrOffsets read u32
// @binding 2 csrItems read u32
// @binding 3 bagOffsets read u32
// @binding 4 dir read u32
// @binding 5 dout read f32
// @binding 6 grads write f32
// @workgroups min(ceil(U*D/256), 65535) 1 1

struct Params { U: u32, D: u32, T: u32, outStride: u32, outOffset: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csrOffsets: array<u32>;
@group(0) @binding(2) var<storage, read> csrItems: array<u32>;
@group(0) @binding(3) var<storage, read> bagOffsets: array<u32>;
@group(0) @binding(4) var<storage, read> dir: array<u32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

// The table of global unique row q: the largest t with prefix_t <= q (tables without rows share
// their prefix with the next one and are skipped by taking the largest).
fn table_of(q: u32) -> u32 {
  var lo = 0u;
  var hi = p.T - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (dir[8u * mid + 5u] <= q) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let total = p.U * p.D;
  for (var g = gid.x; g < total; g += nwg.x * 256u) {
    let q = g / p.D;
    let d = g - q * p.D;
    let t = table_of(q);
    let u = q - dir[8u * t + 5u];
    let idxBase = dir[8u * t + 1u];
    let offBase = dir[8u * t + 2u];
    let co = dir[8u * t + 3u] + u;
    let col = p.outOffset + t * p.D + d;
    var s = 0.0;
    for (var i = csrOffsets[co]; i < csrOffsets[co + 1u]; i++) {
      let b = csrItems[idxBase + i];
      var v = dout[b * p.outStride + col];
      if (p.mode == 1u) { v /= f32(max(bagOffsets[offBase + b + 1u] - bagOffsets[offBase + b], 1u)); }
      s += v;
    }
    grads[dir[8u * t] + u * p.D + d] = s;
  }
}
