// @kernel linear_bwd_n1
// @doc Backward of a linear layer with one output (linear_fwd_n1), in one dispatch: g[m] = dY[m], or dY[m] * (Y[m] > 0) when relu != 0; dX[m,k] = g[m] w[k] (when input != 0); dW[k] = sum_m g[m] X[m,k] at grads[wAt + k] and db = sum_m g[m] at grads[bAt] (one writable binding, as linear_bwd_weight). Split over the batch like linear_bwd_weight: workgroup row z of `splits` writes the partial sums of its rows shifted by z*splitStride (reduce with split_sum; splits = 1 writes dW and db themselves). One column k per thread: loads of X and stores of dX are contiguous across threads. dx is written only when input != 0 (then bind any buffer that the dispatch does not bind otherwise).
// @param M u32
// @param K u32
// @param relu u32
// @param wAt u32 = 0
// @param bAt u32 = 0
// @param input u32 = 1
// @param splits u32 = 1
// @param splitStride u32 = 0
// @binding 1 dy read f32
// @binding 2 x read f32
// @binding 3 w read f32
// @binding 4 y read f32
// @binding 5 dx read_write f32
// @binding 6 grads read_write f32
// @workgroups ceil(K/64) splits 1

struct Params { M: u32, K: u32, relu: u32, wAt: u32, bAt: u32, input: u32, splits: u32, splitStride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

const WG = 64u;
var<workgroup> gsh: array<f32, WG>; // g of the rows being processed, staged once per 64 rows

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u) {
  let k = wid.x * WG + li;
  let live = k < p.K;
  let chunk = (p.M + p.splits - 1u) / p.splits;
  let mStart = min(wid.y * chunk, p.M);
  let mEnd = min(mStart + chunk, p.M);
  var wk = 0.0;
  if (live) { wk = w[k]; }
  var acc = 0.0;
  var gsum = 0.0;
  for (var m0 = mStart; m0 < mEnd; m0 += WG) {
    let mr = m0 + li;
    var g = 0.0;
    if (mr < mEnd) {
      g = dy[mr];
      if (p.relu != 0u) { g = select(0.0, g, y[mr] > 0.0); }
    }
    workgroupBarrier();
    gsh[li] = g;
    workgroupBarrier();
    let rows = min(WG, mEnd - m0);
    for (var r = 0u; r < rows; r++) {
      let gm = gsh[r];
      gsum += gm;
      if (live) {
        let i = (m0 + r) * p.K + k;
        acc += gm * x[i];
        if (p.input != 0u) { dx[i] = gm * wk; }
      }
    }
  }
  let at = wid.y * p.splitStride;
  if (live) { grads[at + p.wAt + k] = acc; }
  if (wid.x == 0u && li == 0u) { grads[at + p.bAt] = gsum; }
}
