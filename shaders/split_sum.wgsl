// @kernel split_sum
// @doc out[i] (+)= scale * (sum over s < S of parts[s * stride + i]), for i < n: reduces the per-split partial sums of linear_bwd_weight / bias_grad / linear_bwd_n1 (fixed order over s: deterministic). accum != 0 adds to out (the old value unscaled). scale is the worker step's gradient scale (local batch / global batch) folded into the dense gradient's final write: one multiply per value, no extra pass.
// @param n u32
// @param S u32
// @param stride u32
// @param accum u32 = 0
// @param scale f32 = 1
// @binding 1 parts read f32
// @binding 2 out read_write f32
// @workgroups min(ceil(n/256), 4096) 1 1

struct Params { n: u32, S: u32, stride: u32, accum: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
    var v = 0.0;
    for (var s = 0u; s < p.S; s++) { v += parts[s * p.stride + i]; }
    v *= p.scale;
    if (p.accum != 0u) { v += out[i]; }
    out[i] = v;
  }
}
