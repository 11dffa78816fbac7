// @kernel linear_bwd_input
// @doc dX[M,K] = G[M,N] * W[N,K] where G = dY, or dY * (Y > 0) when relu != 0 (Y = the forward output). Same 64x64 / 8x8 register tiling as linear_fwd.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 dy read f32
// @binding 2 w read f32
// @binding 3 y read f32
// @binding 4 dx write f32
// @workgroups ceil(K/64) ceil(M/64) 1

struct Params { M: u32, N: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

const BM = 64u; // rows of dX per workgroup
const BK = 64u; // columns of dX per workgroup
const BN = 16u; // slice of the contraction (n) staged per iteration
const TM = 8u;

var<workgroup> gs: array<array<vec4f, 16>, BN>; // gs[n][m/4][m%4] (transposed from dY rows)
var<workgroup> ws: array<array<vec4f, 16>, BN>; // ws[n][k/4][k%4] (W rows as they are)

// dY[row, n..n+3] (contraction-contiguous), zero past N, masked by Y > 0 when relu != 0.
// Branch-free select: a data-dependent branch per element costs more than the extra load.
fn load_g4(base: u32, n: u32) -> vec4f {
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

// W[n, k..k+3] (output-contiguous), zero past N or K.
fn load_w4(n: u32, k: u32) -> vec4f {
  if (n >= p.N) { return vec4f(0.0); }
  let base = n * p.K;
  if (k + 3u < p.K) { return vec4f(w[base + k], w[base + k + 1u], w[base + k + 2u], w[base + k + 3u]); }
  var v = vec4f(0.0);
  for (var j = 0u; j < 3u; j++) { if (k + j < p.K) { v[j] = w[base + k + j]; } }
  return v;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let tx = li % 8u;
  let ty = li / 8u;
  let m0 = wid.y * BM;
  let k0 = wid.x * BK;

  // dY staging: row li/4 + 16*s, n chunk (li%4)*4. W staging: n row li/16 + 4*s, k chunk (li%16)*4.
  let gr = li / 4u;
  let gn = (li % 4u) * 4u;
  let wn = li / 16u;
  let wk = (li % 16u) * 4u;
  var gbase = array<u32, 4>();
  for (var s = 0u; s < 4u; s++) { gbase[s] = min(m0 + gr + 16u * s, p.M - 1u) * p.N; }

  var acc = array<array<vec4f, 2>, TM>();
  for (var n0 = 0u; n0 < p.N; n0 += BN) {
    for (var s = 0u; s < 4u; s++) {
      let r = gr + 16u * s;
      let gv = load_g4(gbase[s], n0 + gn);
      for (var j = 0u; j < 4u; j++) { gs[gn + j][r / 4u][r % 4u] = gv[j]; }
      ws[wn + 4u * s][wk / 4u] = load_w4(n0 + wn + 4u * s, k0 + wk);
    }
    workgroupBarrier();
    for (var nn = 0u; nn < BN; nn++) {
      let a0 = gs[nn][2u * ty];
      let a1 = gs[nn][2u * ty + 1u];
      let b0 = ws[nn][2u * tx];
      let b1 = ws[nn][2u * tx + 1u];
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a0[i] * b0;
        acc[i][1] += a0[i] * b1;
        acc[i + 4u][0] += a1[i] * b0;
        acc[i + 4u][1] += a1[i] * b1;
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let m = m0 + ty * TM + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 8u; j++) {
      let k = k0 + tx * 8u + j;
      if (k < p.K) { dx[m * p.K + k] = acc[i][j / 4u][j % 4u]; }
    }
  }
}
