// @kernel linear_bwd_input
// @doc dX[M,K] = G[M,N] * W[N,K] where G = dY, or dY * (Y > 0) when relu != 0 (Y = the forward output). Same tiling as linear_fwd: 64x64 block of dX per workgroup of 64 threads, 8x8 per thread, double-buffered 16-wide slices of the contraction (n), conflict-free staging (dY one row per thread, W four vec4 per thread), vec4 loads (one when the row is 16-byte aligned: N % 4 == 0 for dY, Y, K % 4 == 0 for W; two aligned loads shifted together otherwise, the row's tail masked). Bind dy, w and y with sizes that are multiples of 16 bytes.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 dy read vec4f
// @binding 2 w read vec4f
// @binding 3 y read vec4f
// @binding 4 dx write f32
// @workgroups ceil(K/64) ceil(M/64) 1

struct Params { M: u32, N: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read> y: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

const BN = 16u; // slice of the contraction (n) staged per iteration

var<workgroup> gs: array<array<array<vec4f, 16>, BN>, 2>; // gs[buf][n][m/4][m%4] (transposed from dY rows)
var<workgroup> ws: array<array<array<vec4f, 16>, BN>, 2>; // ws[buf][n][k/4][k%4] (W rows as they are)

// Elements i..i+3 of dy / y / w, the ones past the first `left` (the row's end) zeroed by select, so
// NaN or garbage past a row never enters a sum. Rows of a K % 4 != 0 layout (K = 13, 415 in DLRM)
// start unaligned: two aligned vec4 loads shifted together instead of four scalar loads (the
// element loads of a vec4 array, each a vec4 load and an extract); the second load is clamped to
// the binding. Measured against padding the layouts to K % 4 == 0: bench/RESULTS.md (2026-12-02).
fn ld_dy(i: u32, left: u32) -> vec4f {
  if (left == 0u) { return vec4f(0.0); }
  let q = i >> 2u;
  let a = dy[q];
  var v = a;
  let o = i & 3u;
  if (o != 0u) {
    let b = dy[min(q + 1u, arrayLength(&dy) - 1u)];
    if (o == 1u) { v = vec4f(a.yzw, b.x); } else if (o == 2u) { v = vec4f(a.zw, b.xy); } else { v = vec4f(a.w, b.xyz); }
  }
  if (left >= 4u) { return v; }
  return select(vec4f(0.0), v, vec4u(0u, 1u, 2u, 3u) < vec4u(left));
}
fn ld_y(i: u32, left: u32) -> vec4f {
  if (left == 0u) { return vec4f(0.0); }
  let q = i >> 2u;
  let a = y[q];
  var v = a;
  let o = i & 3u;
  if (o != 0u) {
    let b = y[min(q + 1u, arrayLength(&y) - 1u)];
    if (o == 1u) { v = vec4f(a.yzw, b.x); } else if (o == 2u) { v = vec4f(a.zw, b.xy); } else { v = vec4f(a.w, b.xyz); }
  }
  if (left >= 4u) { return v; }
  return select(vec4f(0.0), v, vec4u(0u, 1u, 2u, 3u) < vec4u(left));
}
fn ld_w(i: u32, left: u32) -> vec4f {
  if (left == 0u) { return vec4f(0.0); }
  let q = i >> 2u;
  let a = w[q];
  var v = a;
  let o = i & 3u;
  if (o != 0u) {
    let b = w[min(q + 1u, arrayLength(&w) - 1u)];
    if (o == 1u) { v = vec4f(a.yzw, b.x); } else if (o == 2u) { v = vec4f(a.zw, b.xy); } else { v = vec4f(a.w, b.xyz); }
  }
  if (left >= 4u) { return v; }
  return select(vec4f(0.0), v, vec4u(0u, 1u, 2u, 3u) < vec4u(left));
}

// G[row, n..n+3] from the row's base, zero past N; masked by Y > 0 when relu != 0 (branch-free).
fn ld_g(base: u32, n: u32) -> vec4f {
  let left = select(0u, p.N - n, n < p.N);
  let g = ld_dy(base + n, left);
  if (p.relu == 0u) { return g; }
  return select(vec4f(0.0), g, ld_y(base + n, left) > vec4f(0.0));
}

// W[n, k..k+3], zero past N or K.
fn ld_wr(n: u32, k: u32) -> vec4f {
  if (n >= p.N) { return vec4f(0.0); }
  return ld_w(n * p.K + k, select(0u, p.K - k, k < p.K));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let tx = li % 8u;
  let ty = li / 8u;
  let m0 = wid.y * 64u;
  let k0 = wid.x * 64u;
  // dY staging: row li of the tile (clamped), 16 n. W staging: n row li/16 + 4s, k vec4 li%16.
  let gbase = min(m0 + li, p.M - 1u) * p.N;
  let wn = li / 16u;
  let wk = k0 + (li % 16u) * 4u;
  let nt = (p.N + BN - 1u) / BN;

  var gr = array<vec4f, 4>();
  var wr = array<vec4f, 4>();
  var acc = array<array<vec4f, 2>, 8>();

  if (nt > 0u) {
    for (var s = 0u; s < 4u; s++) {
      gr[s] = ld_g(gbase, 4u * s);
      wr[s] = ld_wr(wn + 4u * s, wk);
    }
    for (var s = 0u; s < 4u; s++) {
      for (var j = 0u; j < 4u; j++) { gs[0][4u * s + j][li / 4u][li % 4u] = gr[s][j]; }
      ws[0][wn + 4u * s][li % 16u] = wr[s];
    }
  }
  workgroupBarrier();

  for (var t = 0u; t < nt; t++) {
    let cur = t & 1u;
    let more = t + 1u < nt;
    if (more) {
      let n0 = (t + 1u) * BN;
      for (var s = 0u; s < 4u; s++) {
        gr[s] = ld_g(gbase, n0 + 4u * s);
        wr[s] = ld_wr(n0 + wn + 4u * s, wk);
      }
    }
    for (var nn = 0u; nn < BN; nn++) {
      let a0 = gs[cur][nn][ty];
      let a1 = gs[cur][nn][ty + 8u];
      let b0 = ws[cur][nn][tx];
      let b1 = ws[cur][nn][tx + 8u];
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a0[i] * b0;
        acc[i][1] += a0[i] * b1;
        acc[i + 4u][0] += a1[i] * b0;
        acc[i + 4u][1] += a1[i] * b1;
      }
    }
    if (more) {
      let nxt = cur ^ 1u;
      for (var s = 0u; s < 4u; s++) {
        for (var j = 0u; j < 4u; j++) { gs[nxt][4u * s + j][li / 4u][li % 4u] = gr[s][j]; }
        ws[nxt][wn + 4u * s][li % 16u] = wr[s];
      }
    }
    workgroupBarrier();
  }

  // acc[i][h]: row m0 + 4ty + i (+ 28 for i >= 4), columns k0 + 4tx + 32h .. +3.
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 4u * ty + i + select(0u, 28u, i >= 4u);
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let k = k0 + 4u * tx + 32u * h + j;
        if (k < p.K) { dx[m * p.K + k] = acc[i][h][j]; }
      }
    }
  }
}
