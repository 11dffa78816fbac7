// @kernel linear_fwd_n1
// @doc Y[M,1] = act(X[M,K] * w[K] + b[0]): a linear layer with one output (DLRM's head), one row per thread with vec4 loads of x and w when K % 4 == 0 (a 64x64 GEMM tile would compute 63 useless columns). Bind x and w with sizes that are multiples of 16 bytes.
// @param M u32
// @param K u32
// @param relu u32
// @binding 1 x read vec4f
// @binding 2 w read vec4f
// @binding 3 b read f32
// @binding 4 y write f32
// @workgroups min(ceil(M/64), 65535) 1 1

struct Params { M: u32, K: u32, relu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let K4 = p.K / 4u;
  let aligned = (p.K & 3u) == 0u;
  for (var m = gid.x; m < p.M; m += nwg.x * 64u) {
    var acc = vec4f(0.0);
    var s = 0.0;
    if (aligned) {
      let base = m * K4;
      for (var k = 0u; k < K4; k++) { acc += x[base + k] * w[k]; }
    } else {
      let base = m * p.K;
      for (var k = 0u; k < p.K; k++) { let i = base + k; s += x[i >> 2u][i & 3u] * w[k >> 2u][k & 3u]; }
    }
    var v = (acc.x + acc.y) + (acc.z + acc.w) + s + b[0];
    if (p.relu != 0u) { v = max(v, 0.0); }
    y[m] = v;
  }
}
