// @kernel relu_bwd
// @doc dX[i] = dY[i] if Y[i] > 0 else 0, over n elements (for graphs that do not fuse the ReLU mask into the linear backward kernels). dx may alias nothing; use a separate buffer.
// @param n u32
// @binding 1 dy read f32
// @binding 2 y read f32
// @binding 3 dx write f32
// @workgroups min(ceil(n/256), 4096) 1 1

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // Grid-stride loop: the workgroup count is capped, so any n fits in one dispatch.
  for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
    dx[i] = select(0.0, dy[i], y[i] > 0.0);
  }
}
