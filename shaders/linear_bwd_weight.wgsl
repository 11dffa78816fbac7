// @kernel linear_bwd_weight
// @doc dW[N,K] (+)= G[M,N]^T * X[M,K], a reduction over the batch M; G = dY, or dY * (Y > 0) when relu != 0. accum != 0 adds to dW instead of overwriting it. Same 64x64 / 8x8 register tiling as linear_fwd.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @param accum u32 = 0
// @binding 1 dy read f32
// @binding 2 x read f32
// @binding 3 y read f32
// @binding 4 dw read_write f32
// @workgroups ceil(K/64) ceil(N/64) 1

struct Params { M: u32, N: u32, K: u32, relu: u32, accum: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;

const BN = 64u; // rows of dW per workgroup
const BK = 64u; // columns of dW per workgroup
const BM = 16u; // slice of the batch staged per iteration
const TN = 8u;

var<workgroup> gs: array<array<vec4f, 16>, BM>; // gs[m][n/4][n%4]
var<workgroup> xs: array<array<vec4f, 16>, BM>; // xs[m][k/4][k%4]

// G[m, n..n+3], zero past M or N; masked by Y > 0 when relu != 0 (branch-free select).
fn load_g4(m: u32, n: u32) -> vec4f {
  if (m >= p.M) { return vec4f(0.0); }
  let base = m * p.N;
  var g = vec4f(0.0);
  var keep = vec4<bool>(true);
  if (n + 3u < p.N) {
    g = vec4f(dy[base + n], dy[base + n + 1u], dy[base + n + 2u], dy[base + n + 3u]);
    if (p.relu != 0u) { keep = vec4f(y[base + n], y[base + n + 1u], y[base + n + 2u], y[base + n + 3u]) > vec4f(0.0); }
  } else {
    for (var j = 0u; j < 3u; j++) { // n + 3 >= N here
      if (n + j < p.N) {
        g[j] = dy[base + n + j];
        if (p.relu != 0u) { keep[j] = y[base + n + j] > 0.0; }
      }
    }
  }
  return select(vec4f(0.0), g, keep);
}

// X[m, k..k+3], zero past M or K.
fn load_x4(m: u32, k: u32) -> vec4f {
  if (m >= p.M) { return vec4f(0.0); }
  let base = m * p.K;
  if (k + 3u < p.K) { return vec4f(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]); }
  var v = vec4f(0.0);
  for (var j = 0u; j < 3u; j++) { if (k + j < p.K) { v[j] = x[base + k + j]; } }
  return v;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let tx = li % 8u;
  let ty = li / 8u;
  let n0 = wid.y * BN;
  let k0 = wid.x * BK;
  // Staging: batch row li/16 + 4*s, column chunk (li%16)*4, for both tiles.
  let sm = li / 16u;
  let sc = (li % 16u) * 4u;

  var acc = array<array<vec4f, 2>, TN>();
  for (var mb = 0u; mb < p.M; mb += BM) {
    for (var s = 0u; s < 4u; s++) {
      let r = sm + 4u * s;
      gs[r][sc / 4u] = load_g4(mb + r, n0 + sc);
      xs[r][sc / 4u] = load_x4(mb + r, k0 + sc);
    }
    workgroupBarrier();
    for (var mm = 0u; mm < BM; mm++) {
      let a0 = gs[mm][2u * ty];
      let a1 = gs[mm][2u * ty + 1u];
      let b0 = xs[mm][2u * tx];
      let b1 = xs[mm][2u * tx + 1u];
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a0[i] * b0;
        acc[i][1] += a0[i] * b1;
        acc[i + 4u][0] += a1[i] * b0;
        acc[i + 4u][1] += a1[i] * b1;
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TN; i++) {
    let n = n0 + ty * TN + i;
    if (n >= p.N) { break; }
    for (var j = 0u; j < 8u; j++) {
      let k = k0 + tx * 8u + j;
      if (k < p.K) {
        var v = acc[i][j / 4u][j % 4u];
        if (p.accum != 0u) { v += dw[n * p.K + k]; }
        dw[n * p.K + k] = v;
      }
    }
  }
}
