// @kernel bias_grad
// @doc db[N] (+)= sum over the batch m of G[m,n]; G = dY, or dY * (Y > 0) when relu != 0. A workgroup sums 16 columns with 16 row lanes (fixed per-lane order, then a fixed tree: deterministic). Split over the batch like linear_bwd_weight: workgroup row z of `splits` sums rows [z*c, (z+1)*c), c = ceil(M/splits), into db[z*splitStride + n] (reduce with split_sum); with splits = 1 it writes db (accum != 0 adds).
// @param M u32
// @param N u32
// @param relu u32
// @param accum u32 = 0
// @param splits u32 = 1
// @param splitStride u32 = 0
// @binding 1 dy read f32
// @binding 2 y read f32
// @binding 3 db read_write f32
// @workgroups ceil(N/16) splits 1

struct Params { M: u32, N: u32, relu: u32, accum: u32, splits: u32, splitStride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;

var<workgroup> part: array<array<f32, 16>, 16>; // part[lane][column]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let n = wid.x * 16u + lid.x;
  let chunk = (p.M + p.splits - 1u) / p.splits;
  let mStart = min(wid.y * chunk, p.M);
  let mEnd = min(mStart + chunk, p.M);
  var s = 0.0;
  if (n < p.N) {
    for (var m = mStart + lid.y; m < mEnd; m += 16u) {
      let i = m * p.N + n;
      var g = dy[i];
      if (p.relu != 0u) { g = select(0.0, g, y[i] > 0.0); }
      s += g;
    }
  }
  part[lid.y][lid.x] = s;
  for (var h = 8u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (lid.y < h) { part[lid.y][lid.x] += part[lid.y + h][lid.x]; }
  }
  if (lid.y == 0u && n < p.N) {
    let at = wid.y * p.splitStride + n;
    var v = part[0][lid.x];
    if (p.accum != 0u && p.splits == 1u) { v += db[at]; }
    db[at] = v;
  }
}
