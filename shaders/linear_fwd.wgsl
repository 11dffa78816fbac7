// @kernel linear_fwd
// @doc Y[M,N] = act(X[M,K] * W[N,K]^T + b[N]), act = ReLU when relu != 0. Register-tiled: a 64x64 block of Y per workgroup of 64 threads, 8x8 outputs per thread, X and W staged through workgroup memory in 16-wide k slices.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 x read f32
// @binding 2 w read f32
// @binding 3 b read f32
// @binding 4 y write f32
// @workgroups ceil(N/64) ceil(M/64) 1

struct Params { M: u32, N: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const BM = 64u;  // rows of Y per workgroup
const BN = 64u;  // columns of Y per workgroup
const BK = 16u;  // k slice staged per iteration
const TM = 8u;   // rows per thread
const TN = 8u;   // columns per thread (two vec4)

// Both tiles are stored k-major so a thread reads its 8 rows / 8 columns as two vec4 each.
var<workgroup> xs: array<array<vec4f, 16>, BK>; // xs[k][m/4][m%4]
var<workgroup> ws: array<array<vec4f, 16>, BK>; // ws[k][n/4][n%4]

// Four consecutive k values of one row (zero past K); rows are clamped by the caller.
fn load_x4(base: u32, k: u32) -> vec4f {
  if (k + 3u < p.K) { return vec4f(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]); }
  var v = vec4f(0.0);
  for (var j = 0u; j < 3u; j++) { if (k + j < p.K) { v[j] = x[base + k + j]; } }
  return v;
}
fn load_w4(base: u32, k: u32) -> vec4f {
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
  let n0 = wid.x * BN;

  // Staging: 64 rows x 16 k = 256 vec4 per tile, 4 per thread: row r = li/4 + 16*s, k chunk (li%4)*4.
  let sr = li / 4u;
  let sk = (li % 4u) * 4u;
  var xbase = array<u32, 4>();
  var wbase = array<u32, 4>();
  for (var s = 0u; s < 4u; s++) {
    xbase[s] = min(m0 + sr + 16u * s, p.M - 1u) * p.K; // clamped rows compute garbage that is never stored
    wbase[s] = min(n0 + sr + 16u * s, p.N - 1u) * p.K;
  }

  var acc = array<array<vec4f, 2>, TM>();
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var s = 0u; s < 4u; s++) {
      let r = sr + 16u * s;
      let xv = load_x4(xbase[s], k0 + sk);
      let wv = load_w4(wbase[s], k0 + sk);
      for (var j = 0u; j < 4u; j++) {
        xs[sk + j][r / 4u][r % 4u] = xv[j];
        ws[sk + j][r / 4u][r % 4u] = wv[j];
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = xs[kk][2u * ty];
      let a1 = xs[kk][2u * ty + 1u];
      let b0 = ws[kk][2u * tx];
      let b1 = ws[kk][2u * tx + 1u];
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a0[i] * b0;
        acc[i][1] += a0[i] * b1;
        acc[i + 4u][0] += a1[i] * b0;
        acc[i + 4u][1] += a1[i] * b1;
      }
    }
    workgroupBarrier();
  }

  // Epilogue: bias, optional ReLU, bounds-checked stores.
  for (var i = 0u; i < TM; i++) {
    let m = m0 + ty * TM + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx * TN + j;
      if (n < p.N) {
        var v = acc[i][j / 4u][j % 4u] + b[n];
        if (p.relu != 0u) { v = max(v, 0.0); }
        y[m * p.N + n] = v;
      }
    }
  }
}
