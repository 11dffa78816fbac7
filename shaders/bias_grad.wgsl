// @kernel bias_grad
// @doc db[N] (+)= sum over the batch m of G[m,n]; G = dY, or dY * (Y > 0) when relu != 0. Deterministic: fixed per-thread order, then a fixed tree over 4 partial sums.
// @param M u32
// @param N u32
// @param relu u32
// @param accum u32 = 0
// @binding 1 dy read f32
// @binding 2 y read f32
// @binding 3 db read_write f32
// @workgroups ceil(N/64) 1 1

struct Params { M: u32, N: u32, relu: u32, accum: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;

var<workgroup> part: array<array<f32, 64>, 4>;

@compute @workgroup_size(64, 4)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let n = wid.x * 64u + lid.x;
  var s = 0.0;
  if (n < p.N) {
    for (var m = lid.y; m < p.M; m += 4u) {
      let i = m * p.N + n;
      var g = dy[i];
      if (p.relu != 0u && !(y[i] > 0.0)) { g = 0.0; }
      s += g;
    }
  }
  part[lid.y][lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && n < p.N) {
    var v = (part[0][lid.x] + part[1][lid.x]) + (part[2][lid.x] + part[3][lid.x]);
    if (p.accum != 0u) { v += db[n]; }
    db[n] = v;
  }
}
