// @kernel matmul_naive
// @doc Y[M,N] = act(X[M,K] * W[N,K]^T + b[N]): the plain 16x16 workgroup-tiled kernel (one output per thread), kept as the benchmark baseline for linear_fwd
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 x read f32
// @binding 2 w read f32
// @binding 3 b read f32
// @binding 4 y write f32
// @workgroups ceil(N/16) ceil(M/16) 1

struct Params { M: u32, N: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> xs: array<array<f32, 16>, 16>; // xs[m][k]
var<workgroup> ws: array<array<f32, 16>, 16>; // ws[n][k]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let row = wid.y * 16u + lid.y;
  let col = wid.x * 16u + lid.x;
  let wrow = wid.x * 16u + lid.y; // the W row this thread stages
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    let k = k0 + lid.x;
    var xv = 0.0;
    if (row < p.M && k < p.K) { xv = x[row * p.K + k]; }
    xs[lid.y][lid.x] = xv;
    var wv = 0.0;
    if (wrow < p.N && k < p.K) { wv = w[wrow * p.K + k]; }
    ws[lid.y][lid.x] = wv;
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      acc += xs[lid.y][kk] * ws[lid.x][kk];
    }
    workgroupBarrier();
  }
  if (row < p.M && col < p.N) {
    var v = acc + b[col];
    if (p.relu != 0u) { v = max(v, 0.0); }
    y[row * p.N + col] = v;
  }
}
