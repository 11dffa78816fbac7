// @kernel linear_fwd
// @doc Y[M,N] = act(X[M,K] * W[N,K]^T + b[N]), act = ReLU when relu != 0. Register-tiled: a 64x64 block of Y per workgroup of 64 threads, 8x8 outputs per thread (override RG = 1: a 32x64 block, 4x8 per thread, for narrow layers) (rows 4ty..4ty+3 and 32+4ty.., columns likewise, so the tile reads are conflict-free and the stores contiguous), X and W staged through double-buffered workgroup memory in 16-wide k slices (one barrier per slice; the next slice's global loads are in flight during the FMAs), one row per thread when staging (conflict-free stores). x and w are read as vec4: one load when the row is 16-byte aligned (K % 4 == 0), two aligned loads shifted together otherwise, the row's tail masked; any K works. Bind x and w with sizes that are multiples of 16 bytes.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 x read vec4f
// @binding 2 w read vec4f
// @binding 3 b read f32
// @binding 4 y write f32
// @workgroups ceil(N/64) ceil(M/64) 1
// Override RG = 1 (rows groups of 4 per thread: 4x8 outputs per thread, a 32x64 block) for narrow
// layers (N <= 64), which then get twice the workgroups; dispatch ceil(N/64) x ceil(M/32) then.

struct Params { M: u32, N: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const BK = 16u; // k slice staged per iteration
override RG: u32 = 2u; // groups of 4 rows per thread: the block is 32 * RG rows (1 or 2)

// Tiles are stored k-major: xs[buf][k][m/4][m%4], so a thread reads 4 rows (or columns) as a vec4.
var<workgroup> xs: array<array<array<vec4f, 16>, BK>, 2>;
var<workgroup> ws: array<array<array<vec4f, 16>, BK>, 2>;

// Elements i..i+3 of x / w, the ones past the first `left` (the row's end) zeroed by select, so
// NaN or garbage past a row never enters a sum. Rows of a K % 4 != 0 layout (K = 13, 415 in DLRM)
// start unaligned: two aligned vec4 loads shifted together instead of four scalar loads (the
// element loads of a vec4 array, each a vec4 load and an extract); the second load is clamped to
// the binding. Measured against padding the layouts to K % 4 == 0: bench/RESULTS.md (2026-12-02).
fn ld_x(i: u32, left: u32) -> vec4f {
  if (left == 0u) { return vec4f(0.0); }
  let q = i >> 2u;
  let a = x[q];
  var v = a;
  let o = i & 3u;
  if (o != 0u) {
    let b = x[min(q + 1u, arrayLength(&x) - 1u)];
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

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let tx = li % 8u;
  let ty = li / 8u;
  let m0 = wid.y * 32u * RG;
  let n0 = wid.x * 64u;
  // Staging: thread li loads row li of the W tile (4 vec4) and row xr of the X tile (vec4s xs0 ..
  // xs0 + 2RG - 1: all four when RG = 2, two when the 32 rows are shared by 64 threads). Clamped
  // rows compute garbage that is never stored.
  let xr = li % (32u * RG);
  let xs0 = (li / (32u * RG)) * 2u * RG;
  let xbase = min(m0 + xr, p.M - 1u) * p.K;
  let wbase = min(n0 + li, p.N - 1u) * p.K;
  let nk = (p.K + BK - 1u) / BK;

  var xv = array<vec4f, 4>();
  var wr = array<vec4f, 4>();
  var acc = array<array<vec4f, 2>, 8>();

  // Prologue: slice 0 into buffer 0.
  if (nk > 0u) {
    for (var s = 0u; s < 4u; s++) {
      let k = 4u * s;
      let left = select(0u, p.K - k, k < p.K);
      wr[s] = ld_w(wbase + k, left);
    }
    for (var s = 0u; s < 2u * RG; s++) {
      let k = 4u * (xs0 + s);
      xv[s] = ld_x(xbase + k, select(0u, p.K - k, k < p.K));
    }
    for (var s = 0u; s < 4u; s++) {
      for (var j = 0u; j < 4u; j++) { ws[0][4u * s + j][li / 4u][li % 4u] = wr[s][j]; }
    }
    for (var s = 0u; s < 2u * RG; s++) {
      for (var j = 0u; j < 4u; j++) { xs[0][4u * (xs0 + s) + j][xr / 4u][xr % 4u] = xv[s][j]; }
    }
  }
  workgroupBarrier();

  for (var t = 0u; t < nk; t++) {
    let cur = t & 1u;
    let more = t + 1u < nk;
    if (more) {
      let k0 = (t + 1u) * BK;
      for (var s = 0u; s < 4u; s++) {
        let k = k0 + 4u * s;
        wr[s] = ld_w(wbase + k, select(0u, p.K - k, k < p.K));
      }
      for (var s = 0u; s < 2u * RG; s++) {
        let k = k0 + 4u * (xs0 + s);
        xv[s] = ld_x(xbase + k, select(0u, p.K - k, k < p.K));
      }
    }
    for (var kk = 0u; kk < BK; kk++) {
      let b0 = ws[cur][kk][tx];
      let b1 = ws[cur][kk][tx + 8u];
      let a0 = xs[cur][kk][ty];
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a0[i] * b0;
        acc[i][1] += a0[i] * b1;
      }
      if (RG == 2u) {
        let a1 = xs[cur][kk][ty + 8u];
        for (var i = 0u; i < 4u; i++) {
          acc[i + 4u][0] += a1[i] * b0;
          acc[i + 4u][1] += a1[i] * b1;
        }
      }
    }
    if (more) {
      let nxt = cur ^ 1u;
      for (var s = 0u; s < 4u; s++) {
        for (var j = 0u; j < 4u; j++) { ws[nxt][4u * s + j][li / 4u][li % 4u] = wr[s][j]; }
      }
      for (var s = 0u; s < 2u * RG; s++) {
        for (var j = 0u; j < 4u; j++) { xs[nxt][4u * (xs0 + s) + j][xr / 4u][xr % 4u] = xv[s][j]; }
      }
    }
    workgroupBarrier();
  }

  // Epilogue: bias, optional ReLU, bounds-checked stores. acc[i][h] holds row
  // m0 + 4ty + i (+ 28 for i >= 4, i.e. 32 + 4ty + i - 4), columns n0 + 4tx + 32h .. +3.
  for (var i = 0u; i < 4u * RG; i++) {
    let m = m0 + 4u * ty + i + select(0u, 28u, i >= 4u);
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 4u * tx + 32u * h + j;
        if (n < p.N) {
          var v = acc[i][h][j] + b[n];
          if (p.relu != 0u) { v = max(v, 0.0); }
          y[m * p.N + n] = v;
        }
      }
    }
  }
}
