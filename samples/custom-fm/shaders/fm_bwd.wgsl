// @kernel fm_bwd
// @doc Backward of fm_fwd: de[b,f,0] = g[b]; de[b,f,1+d] = g[b] * (sum_j e[b,j,1+d] - e[b,f,1+d]), g = dlogits. One thread per (sample, column), looping over the fields.
// @param B u32
// @param F u32
// @param K u32
// @binding 1 e read f32
// @binding 2 dlogits read f32
// @binding 3 de write f32
// @workgroups min(ceil(B*(K+1)/64), 65535) 1 1

struct Params { B: u32, F: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> de: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let W = p.K + 1u;
  for (var t = gid.x; t < p.B * W; t += nwg.x * 64u) {
    let b = t / W;
    let d = t % W;
    let base = b * p.F * W + d;
    let g = dlogits[b];
    if (d == 0u) {
      for (var f = 0u; f < p.F; f++) { de[base + f * W] = g; }
    } else {
      var sum = 0.0;
      for (var f = 0u; f < p.F; f++) { sum += e[base + f * W]; }
      for (var f = 0u; f < p.F; f++) { de[base + f * W] = g * (sum - e[base + f * W]); }
    }
  }
}
