// @kernel interaction_fwd
// @doc DLRM dot interaction. With F = T+1 feature vectors per sample, v_0 = z[b] (bottom MLP output, [B,D]) and v_t = e[b,t-1] (embeddings, [B,T,D]), writes out[b] = [z[b] (D values), dot(v_i, v_j) for i in 1..F-1, j in 0..i-1] (torch.tril_indices(F, F, -1) order, as facebookresearch/dlrm). out is [B, D + F(F-1)/2]. One workgroup per sample: the sample's vectors are staged in workgroup memory 64 columns at a time and each thread computes a 4x4 block of the Gram matrix (F <= 64; larger F falls back to one dot product per thread from global memory).
// @param B u32
// @param D u32
// @param T u32
// @binding 1 z read f32
// @binding 2 e read f32
// @binding 3 out write f32
// @workgroups min(B, 65535) 1 1

struct Params { B: u32, D: u32, T: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> e: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG = 64u;
const DC = 64u;    // columns of the feature vectors staged at a time
const CAP = 1024u; // vec4 slots of workgroup memory (16 KiB)
// vs[dd * G + f / 4][f % 4] = v_f[d0 + dd]: four feature vectors side by side per column.
var<workgroup> vs: array<vec4f, CAP>;

fn vec_at(b: u32, f: u32, d: u32) -> f32 {
  if (f == 0u) { return z[b * p.D + d]; }
  return e[(b * p.T + f - 1u) * p.D + d];
}

// Largest a with a(a+1)/2 <= t (row of t in a lower-triangular enumeration including the diagonal).
fn tri_row(t: u32) -> u32 {
  var a = u32((sqrt(8.0 * f32(t) + 1.0) - 1.0) * 0.5);
  while (a * (a + 1u) / 2u > t) { a--; }
  while ((a + 1u) * (a + 2u) / 2u <= t) { a++; }
  return a;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let F = p.T + 1u;
  let G = (F + 3u) / 4u;              // blocks of 4 feature vectors
  let P = F * (F - 1u) / 2u;
  let width = p.D + P;
  let ntiles = G * (G + 1u) / 2u;     // 4x4 blocks on and below the diagonal
  let staged = G * DC <= CAP;
  for (var b = wid.x; b < p.B; b += nwg.x) {
    let ob = b * width;
    for (var d = li; d < p.D; d += WG) { out[ob + d] = z[b * p.D + d]; }
    if (staged) {
      for (var t0 = 0u; t0 < ntiles; t0 += WG) {
        let t = t0 + li;
        let live = t < ntiles;
        let a = tri_row(min(t, ntiles - 1u)); // block row (vectors 4a..4a+3)
        let c = min(t, ntiles - 1u) - a * (a + 1u) / 2u; // block column, c <= a
        var acc = array<vec4f, 4>(); // explicit: see docs/gpu.md on zero-init in loops
        for (var d0 = 0u; d0 < p.D; d0 += DC) {
          let dn = min(DC, p.D - d0);
          workgroupBarrier(); // everyone is done reading the previous chunk
          for (var idx = li; idx < 4u * G * dn; idx += WG) {
            let f = idx / dn;
            let dd = idx % dn;
            var v = 0.0;
            if (f < F) { v = vec_at(b, f, d0 + dd); }
            vs[dd * G + f / 4u][f % 4u] = v;
          }
          workgroupBarrier();
          if (live) {
            for (var dd = 0u; dd < dn; dd++) {
              let va = vs[dd * G + a];
              let vc = vs[dd * G + c];
              acc[0] += va.x * vc;
              acc[1] += va.y * vc;
              acc[2] += va.z * vc;
              acc[3] += va.w * vc;
            }
          }
        }
        if (live) {
          for (var r = 0u; r < 4u; r++) {
            let i = 4u * a + r;
            if (i >= F) { break; }
            for (var s = 0u; s < 4u; s++) {
              let j = 4u * c + s;
              if (j < i) { out[ob + p.D + i * (i - 1u) / 2u + j] = acc[r][s]; }
            }
          }
        }
      }
      workgroupBarrier(); // the next sample restages vs
    } else {
      // Many features: one pair per thread straight from global memory.
      for (var q = li; q < P; q += WG) {
        let i = tri_row(q) + 1u; // q = i(i-1)/2 + j with j < i
        let j = q - i * (i - 1u) / 2u;
        var s = 0.0;
        for (var d = 0u; d < p.D; d++) { s += vec_at(b, i, d) * vec_at(b, j, d); }
        out[ob + p.D + q] = s;
      }
    }
  }
}
