// @kernel sum_reduce
// @doc out[0] = scale * sum of x[0..n): one workgroup, fixed summation order (deterministic). For the mean loss use scale = 1/B.
// @param n u32
// @param scale f32 = 1
// @binding 1 x read f32
// @binding 2 out write f32
// @workgroups 1 1 1

struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.n; i += 256u) { s += x[i]; }
  part[li] = s;
  workgroupBarrier();
  for (var h = 128u; h > 0u; h >>= 1u) {
    if (li < h) { part[li] += part[li + h]; }
    workgroupBarrier();
  }
  if (li == 0u) { out[0] = part[0] * p.scale; }
}
