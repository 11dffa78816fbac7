// @kernel adagrad_update
// @doc Adagrad over n flat f32 parameters: g = gradScale * grad + weightDecay * param; accum += g^2; param -= lr * g / (sqrt(accum) + eps) (torch.optim.Adagrad without lr decay).
// @param n u32
// @param lr f32
// @param eps f32 = 1e-10
// @param weightDecay f32 = 0
// @param gradScale f32 = 1
// @binding 1 param read_write f32
// @binding 2 grad read f32
// @binding 3 accum read_write f32
// @workgroups min(ceil(n/256), 4096) 1 1

struct Params { n: u32, lr: f32, eps: f32, weightDecay: f32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> accum: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
    let w = param[i];
    let g = p.gradScale * grad[i] + p.weightDecay * w;
    let a = accum[i] + g * g;
    accum[i] = a;
    param[i] = w - p.lr * g / (sqrt(a) + p.eps);
  }
}
