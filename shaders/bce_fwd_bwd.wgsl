// @kernel bce_fwd_bwd
// @doc Binary cross-entropy on logits: loss[b] = max(x,0) - x*y + log1p(exp(-|x|)) (stable for any x), dlogit[b] = (sigmoid(x) - y) / B (the gradient of the batch mean). Reduce loss with sum_reduce (scale 1/B) for the mean.
// @param B u32
// @binding 1 logits read f32
// @binding 2 labels read f32
// @binding 3 loss write f32
// @binding 4 dlogits write f32
// @workgroups min(ceil(B/256), 4096) 1 1

struct Params { B: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

// log(1 + t) for t in [0, 1], accurate for tiny t (WGSL has no log1p).
fn log1p_small(t: f32) -> f32 {
  let u = 1.0 + t;
  if (u == 1.0) { return t; }
  return log(u) * (t / (u - 1.0));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let inv = 1.0 / f32(p.B);
  for (var i = gid.x; i < p.B; i += nwg.x * 256u) {
    let x = logits[i];
    let y = labels[i];
    let t = exp(-abs(x));
    loss[i] = max(x, 0.0) - x * y + log1p_small(t);
    // sigmoid without overflow: for x >= 0, 1/(1+t); for x < 0, t/(1+t).
    let s = select(t / (1.0 + t), 1.0 / (1.0 + t), x >= 0.0);
    dlogits[i] = (s - y) * inv;
  }
}
