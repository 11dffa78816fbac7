// @kernel fm_fwd
// @doc Factorization machine logit per sample: logit[b] = base[b * baseStride] + sum_f e[b,f,0] + 0.5 * sum_d ((sum_f e[b,f,1+d])^2 - sum_f e[b,f,1+d]^2). e is [B, F, K+1]: column 0 of a field's row is its linear weight, columns 1..K its factor vector. base is the global bias w0 (baseStride 0) or a per-sample logit such as the dense linear term's (baseStride 1).
// @param B u32
// @param F u32
// @param K u32
// @param baseStride u32 = 0
// @binding 1 e read f32
// @binding 2 base read f32
// @binding 3 logits write f32
// @workgroups min(ceil(B/64), 65535) 1 1

struct Params { B: u32, F: u32, K: u32, baseStride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> base: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let W = p.K + 1u;
  for (var b = gid.x; b < p.B; b += nwg.x * 64u) {
    let row = b * p.F * W;
    var s = base[b * p.baseStride];
    for (var f = 0u; f < p.F; f++) { s += e[row + f * W]; }
    var pair = 0.0;
    for (var d = 1u; d < W; d++) {
      var sum = 0.0;
      var sq = 0.0;
      for (var f = 0u; f < p.F; f++) {
        let v = e[row + f * W + d];
        sum += v;
        sq += v * v;
      }
      pair += sum * sum - sq;
    }
    logits[b] = s + 0.5 * pair;
  }
}
