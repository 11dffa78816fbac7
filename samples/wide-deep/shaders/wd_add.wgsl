// @kernel wd_add
// @doc The Wide & Deep logit: logits[b] = wide[b] + deep[b] (the wide part's summed weights plus the deep MLP's head). Its backward is the identity on both inputs, so the backward pass reads d.logits directly.
// @param B u32
// @binding 1 wide read f32
// @binding 2 deep read f32
// @binding 3 logits write f32
// @workgroups min(ceil(B/64), 65535) 1 1

struct Params { B: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> wide: array<f32>;
@group(0) @binding(2) var<storage, read> deep: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var b = gid.x; b < p.B; b += nwg.x * 64u) {
    logits[b] = wide[b] + deep[b];
  }
}
