// @kernel adam_update
// @doc Adam / AdamW over n flat f32 parameters (torch.optim semantics). g = gradScale * grad (+ weightDecay * param when decoupled = 0); m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2; param -= lr * (m / bc1) / (sqrt(v / bc2) + eps) (and param *= 1 - lr * weightDecay first when decoupled = 1, AdamW). bc1 = 1 - beta1^t and bc2 = 1 - beta2^t for step t >= 1, computed by the caller in float64.
// @param n u32
// @param lr f32
// @param beta1 f32 = 0.9
// @param beta2 f32 = 0.999
// @param eps f32 = 1e-8
// @param weightDecay f32 = 0
// @param decoupled u32 = 0
// @param bc1 f32
// @param bc2 f32
// @param gradScale f32 = 1
// @binding 1 param read_write f32
// @binding 2 grad read f32
// @binding 3 m read_write f32
// @binding 4 v read_write f32
// @workgroups min(ceil(n/256), 4096) 1 1

struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, decoupled: u32, bc1: f32, bc2: f32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
    var w = param[i];
    var g = p.gradScale * grad[i];
    if (p.decoupled != 0u) { w *= 1.0 - p.lr * p.weightDecay; } else { g += p.weightDecay * w; }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = w - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
  }
}
