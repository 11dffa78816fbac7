// @kernel interaction_bwd
// @doc Backward of interaction_fwd. From dout[B, D + F(F-1)/2] gives dz[b,d] = dout[b,d] + sum_g S(0,g) v_g[d] and de[b,t,d] = sum_g S(t+1,g) v_g[d], where S is the symmetric F x F matrix of pair gradients (S(i,j) = S(j,i) = dout of pair (max, min), zero diagonal). One workgroup per sample: S and 32-column slices of the vectors are staged in workgroup memory and each thread computes 4 vectors x 4 columns of dV = S V (F <= 48; larger F falls back to one output per thread from global memory).
// @param B u32
// @param D u32
// @param T u32
// @binding 1 z read f32
// @binding 2 e read f32
// @binding 3 dout read f32
// @binding 4 dz write f32
// @binding 5 de write f32
// @workgroups min(B, 65535) 1 1

struct Params { B: u32, D: u32, T: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> e: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read_write> de: array<f32>;

const WG = 64u;
const DC = 32u;    // columns staged at a time
const CAP = 1024u; // vec4 slots of workgroup memory (16 KiB)
// sh[g * G + f / 4][f % 4] = S(f, g) for the first F * G slots, then
// sh[F * G + g * DC/4 + dd / 4][dd % 4] = v_g[d0 + dd].
var<workgroup> sh: array<vec4f, CAP>;

fn vec_at(b: u32, f: u32, d: u32) -> f32 {
  if (f == 0u) { return z[b * p.D + d]; }
  return e[(b * p.T + f - 1u) * p.D + d];
}

// Gradient of dot(v_f, v_g) for f != g, from the pair's slot in dout.
fn pair_grad(ob: u32, f: u32, g: u32) -> f32 {
  let hi = max(f, g);
  let lo = min(f, g);
  return dout[ob + p.D + hi * (hi - 1u) / 2u + lo];
}

fn write_grad(b: u32, f: u32, d: u32, width: u32, v: f32) {
  if (f == 0u) {
    dz[b * p.D + d] = dout[b * width + d] + v; // z also passes straight through to the output
  } else {
    de[(b * p.T + f - 1u) * p.D + d] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let F = p.T + 1u;
  let G = (F + 3u) / 4u;
  let width = p.D + F * (F - 1u) / 2u;
  let vOff = F * G;
  let staged = F * G + F * (DC / 4u) <= CAP;
  let ntiles = G * (DC / 4u);
  for (var b = wid.x; b < p.B; b += nwg.x) {
    let ob = b * width;
    if (staged) {
      workgroupBarrier(); // the previous sample is done with sh
      for (var idx = li; idx < F * 4u * G; idx += WG) {
        let g = idx / (4u * G);
        let f = idx % (4u * G);
        var s = 0.0;
        if (f < F && f != g) { s = pair_grad(ob, f, g); }
        sh[g * G + f / 4u][f % 4u] = s;
      }
      for (var d0 = 0u; d0 < p.D; d0 += DC) {
        workgroupBarrier();
        for (var idx = li; idx < F * DC; idx += WG) {
          let g = idx / DC;
          let dd = idx % DC;
          var v = 0.0;
          if (d0 + dd < p.D) { v = vec_at(b, g, d0 + dd); }
          sh[vOff + g * (DC / 4u) + dd / 4u][dd % 4u] = v;
        }
        workgroupBarrier();
        for (var t = li; t < ntiles; t += WG) {
          let fb = t / (DC / 4u); // vectors 4fb..4fb+3
          let db = t % (DC / 4u); // columns d0 + 4db .. +3
          var acc = array<vec4f, 4>(); // explicit: see docs/gpu.md on zero-init in loops
          for (var g = 0u; g < F; g++) {
            let s4 = sh[g * G + fb];
            let v4 = sh[vOff + g * (DC / 4u) + db];
            acc[0] += s4.x * v4;
            acc[1] += s4.y * v4;
            acc[2] += s4.z * v4;
            acc[3] += s4.w * v4;
          }
          for (var r = 0u; r < 4u; r++) {
            let f = 4u * fb + r;
            if (f >= F) { break; }
            for (var s = 0u; s < 4u; s++) {
              let d = d0 + 4u * db + s;
              if (d < p.D) { write_grad(b, f, d, width, acc[r][s]); }
            }
          }
        }
      }
    } else {
      // Many features: one output per thread straight from global memory.
      for (var idx = li; idx < F * p.D; idx += WG) {
        let f = idx / p.D;
        let d = idx % p.D;
        var s = 0.0;
        for (var g = 0u; g < F; g++) {
          if (g != f) { s += pair_grad(ob, f, g) * vec_at(b, g, d); }
        }
        write_grad(b, f, d, width, s);
      }
    }
  }
}
