// @kernel linear_bwd_weight
// @doc dW[N,K] = G[M,N]^T * X[M,K] and db[N] = sum_m G[m,:] (bias != 0), reductions over the batch M; G = dY, or dY * (Y > 0) when relu != 0. Both land in one buffer `grads`: dW row-major at float offset wAt, db at bAt (one writable binding, so dW and db may sit in the same buffer, e.g. the model runner's dense.grad or dense.gradSplits). Split over the batch: workgroup z of `splits` reduces rows [z*c, (z+1)*c), c = ceil(M/splits), and writes its partial sums shifted by z*splitStride; reduce them with split_sum (one dispatch for every layer when all of them split into one [splits, splitStride] buffer). With splits = 1 it writes dW and db themselves (accum != 0 adds to them). Tiling as linear_fwd: 64x64 block of dW per workgroup, 8x8 per thread, double-buffered 16-row slices, vec4 loads (one when the row is 16-byte aligned: N % 4 == 0 for dY, Y, K % 4 == 0 for X; two aligned loads shifted together otherwise, the row's tail masked). Bind dy, x and y with sizes that are multiples of 16 bytes.
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @param wAt u32 = 0
// @param bAt u32 = 0
// @param bias u32 = 1
// @param splits u32 = 1
// @param splitStride u32 = 0
// @param accum u32 = 0
// @binding 1 dy read vec4f
// @binding 2 x read vec4f
// @binding 3 y read vec4f
// @binding 4 grads read_write f32
// @workgroups ceil(K/64) ceil(N/64) splits

struct Params { M: u32, N: u32, K: u32, relu: u32, wAt: u32, bAt: u32, bias: u32, splits: u32, splitStride: u32, accum: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> x: array<vec4f>;
@group(0) @binding(3) var<storage, read> y: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

const BM = 16u; // slice of the batch staged per iteration

var<workgroup> gs: array<array<array<vec4f, 16>, BM>, 2>; // gs[buf][m][n/4][n%4]
var<workgroup> xs: array<array<array<vec4f, 16>, BM>, 2>; // xs[buf][m][k/4][k%4]

// Elements i..i+3 of dy / y / x, the ones past the first `left` (the row's end) zeroed by select, so
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

// G[m, n..n+3], zero past the split's rows or N; masked by Y > 0 when relu != 0 (branch-free).
fn ld_g(m: u32, mEnd: u32, n: u32) -> vec4f {
  if (m >= mEnd) { return vec4f(0.0); }
  let i = m * p.N + n;
  let left = select(0u, p.N - n, n < p.N);
  let g = ld_dy(i, left);
  if (p.relu == 0u) { return g; }
  return select(vec4f(0.0), g, ld_y(i, left) > vec4f(0.0));
}

// X[m, k..k+3], zero past the split's rows or K.
fn ld_xr(m: u32, mEnd: u32, k: u32) -> vec4f {
  if (m >= mEnd) { return vec4f(0.0); }
  return ld_x(m * p.K + k, select(0u, p.K - k, k < p.K));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let tx = li % 8u;
  let ty = li / 8u;
  let n0 = wid.y * 64u;
  let k0 = wid.x * 64u;
  let z = wid.z;
  let chunk = (p.M + p.splits - 1u) / p.splits;
  let mStart = min(z * chunk, p.M);
  let mEnd = min(mStart + chunk, p.M);
  let nt = (mEnd - mStart + BM - 1u) / BM;
  // Staging (both tiles): batch row li/16 + 4s of the slice, column vec4 li%16: consecutive
  // threads store consecutive vec4 (conflict-free).
  let sm = li / 16u;
  let sc = (li % 16u) * 4u;

  var gr = array<vec4f, 4>();
  var xr = array<vec4f, 4>();
  var acc = array<array<vec4f, 2>, 8>();
  var bacc = array<vec4f, 2>(); // bias partials of rows n0 + 4ty.. and n0 + 32 + 4ty..
  let withBias = p.bias != 0u && wid.x == 0u; // only the first column block of workgroups

  if (nt > 0u) {
    for (var s = 0u; s < 4u; s++) {
      let m = mStart + sm + 4u * s;
      gr[s] = ld_g(m, mEnd, n0 + sc);
      xr[s] = ld_xr(m, mEnd, k0 + sc);
    }
    for (var s = 0u; s < 4u; s++) {
      gs[0][sm + 4u * s][li % 16u] = gr[s];
      xs[0][sm + 4u * s][li % 16u] = xr[s];
    }
  }
  workgroupBarrier();

  for (var t = 0u; t < nt; t++) {
    let cur = t & 1u;
    let more = t + 1u < nt;
    if (more) {
      let mb = mStart + (t + 1u) * BM;
      for (var s = 0u; s < 4u; s++) {
        let m = mb + sm + 4u * s;
        gr[s] = ld_g(m, mEnd, n0 + sc);
        xr[s] = ld_xr(m, mEnd, k0 + sc);
      }
    }
    for (var mm = 0u; mm < BM; mm++) {
      let a0 = gs[cur][mm][ty];
      let a1 = gs[cur][mm][ty + 8u];
      let b0 = xs[cur][mm][tx];
      let b1 = xs[cur][mm][tx + 8u];
      if (withBias) {
        bacc[0] += a0;
        bacc[1] += a1;
      }
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
        gs[nxt][sm + 4u * s][li % 16u] = gr[s];
        xs[nxt][sm + 4u * s][li % 16u] = xr[s];
      }
    }
    workgroupBarrier();
  }

  let wbase = z * p.splitStride + p.wAt;
  let bbase = z * p.splitStride + p.bAt;
  let addOld = p.accum != 0u && p.splits == 1u;
  // acc[i][h]: dW row n0 + 4ty + i (+ 28 for i >= 4), columns k0 + 4tx + 32h .. +3.
  for (var i = 0u; i < 8u; i++) {
    let n = n0 + 4u * ty + i + select(0u, 28u, i >= 4u);
    if (n >= p.N) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let k = k0 + 4u * tx + 32u * h + j;
        if (k < p.K) {
          let at = wbase + n * p.K + k;
          var v = acc[i][h][j];
          if (addOld) { v += grads[at]; }
          grads[at] = v;
        }
      }
    }
    // The bias: the first column block of workgroups, one thread per row of dW.
    if (withBias && tx == 0u) {
      let at = bbase + n;
      var v = bacc[i / 4u][i % 4u];
      if (addOld) { v += grads[at]; }
      grads[at] = v;
    }
  }
}
