# shellcheck shell=bash
# Sourced by run.sh and step-vs-torch.sh, on the GPU box (and in prove-local.sh's empty directory
# here). Unpacks what was carried in .devbox/ (pack.sh) into a fresh directory under /tmp, writes
# nothing anywhere else and needs no root, then checks and prints, before anything runs:
#   glibc and libstdc++ (Dawn needs glibc >= 2.34, GLIBCXX_3.4.30), the libvulkan.so.1 used (the
#   carried loader, dpkg -x'd under /tmp, on LD_LIBRARY_PATH), the Vulkan ICD file used,
#   nvidia-smi -L, and the adapter Dawn reports (vendor, architecture, device, driver).
# A software adapter (lavapipe/llvmpipe, SwiftShader) is refused, exit 3, unless SOFTWARE_OK=1,
# and so is an adapter whose vendor is not EXPECT_VENDOR (default nvidia; empty: any).
# In: SOFTWARE_OK, EXPECT_VENDOR, OUT (where results go; default a new /tmp/hybridps-out.XXXXXX),
# HYBRIDPS_DEVBOX (the carried folder; default .devbox beside scripts/). Out: NODE, APP, BOX_DIR,
# OUT (exported), $OUT/env.json with every check, and from here on all output also in $OUT/run.log.

OUT="${OUT:-$(mktemp -d /tmp/hybridps-out.XXXXXX)}"
mkdir -p "$OUT"
export OUT
exec > >(tee -a "$OUT/run.log") 2>&1
box_tee=$!
BOX_DIR=""
# On exit: remove the unpacked copy (about 120 MiB; KEEP_BOX=1 keeps it), let tee finish run.log.
trap '[ -n "$BOX_DIR" ] && [ "${KEEP_BOX:-0}" != 1 ] && rm -rf "$BOX_DIR"; exec >&- 2>&-; wait "$box_tee" 2>/dev/null || true' EXIT

box_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
carried="${HYBRIDPS_DEVBOX:-$box_here/../../.devbox}"
SOFTWARE_OK="${SOFTWARE_OK:-0}"
if [ "$SOFTWARE_OK" = 1 ]; then EXPECT_VENDOR="${EXPECT_VENDOR:-}"; else EXPECT_VENDOR="${EXPECT_VENDOR-nvidia}"; fi
for f in node.xz app.tar.xz; do
  [ -f "$carried/$f" ] || { echo "[box] $carried/$f is missing: run scripts/gpu-box/pack.sh on the build machine and carry .devbox" >&2; exit 2; }
done

BOX_DIR=$(mktemp -d /tmp/hybridps-box.XXXXXX)
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" HYBRIDPS_LOG="${HYBRIDPS_LOG:-warn}"
say() { echo "[box] $*"; }
say "unpacking $carried into $BOX_DIR"
if command -v xz > /dev/null; then
  xz -dc "$carried/node.xz" > "$BOX_DIR/node"
  tar -xJf "$carried/app.tar.xz" -C "$BOX_DIR"
else # no xz-utils on the box: python3's lzma reads the same files
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$carried/node.xz" "$BOX_DIR/node"
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$carried/app.tar.xz" "$BOX_DIR"
fi
chmod +x "$BOX_DIR/node"
NODE="$BOX_DIR/node"
APP="$BOX_DIR/app"

# ---- glibc, libstdc++ ----
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null) || glibc="unknown"
glibc_v=${glibc##* }
if [[ $glibc_v =~ ^([0-9]+)\.([0-9]+) ]] && (( BASH_REMATCH[1] * 1000 + BASH_REMATCH[2] >= 2034 )); then
  say "glibc: $glibc (Dawn needs >= 2.34: ok)"
else
  say "glibc: $glibc: WARNING: Dawn's dawn.node needs glibc >= 2.34 and will not load"
fi
ldcache=$(ldconfig -p 2>/dev/null) || ldcache=""
libstdcxx=""
for p in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6; do
  [ -e "$p" ] && { libstdcxx=$p; break; }
done
glibcxx=no
if [ -n "$libstdcxx" ] && grep -a -c 'GLIBCXX_3\.4\.30' "$libstdcxx" > /dev/null; then glibcxx=yes; fi
say "libstdc++: ${libstdcxx:-not found} (GLIBCXX_3.4.30: $glibcxx)"

# ---- the Vulkan loader: the carried one, unpacked under /tmp ----
debs=("$carried"/libvulkan1_*_amd64.deb)
vulkan_lib=""
if [ -f "${debs[0]}" ]; then
  if command -v dpkg > /dev/null; then
    dpkg -x "${debs[0]}" "$BOX_DIR/vulkan"
  else # no dpkg: a .deb is an ar archive holding data.tar.xz
    python3 - "${debs[0]}" "$BOX_DIR/vulkan" <<'PY'
import io, lzma, sys, tarfile
data = open(sys.argv[1], 'rb').read()
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58])
    body = data[pos + 60:pos + 60 + size]
    if name.startswith('data.tar'):
        raw = lzma.decompress(body) if name.rstrip('/').endswith('.xz') else body
        tarfile.open(fileobj=io.BytesIO(raw)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
  fi
  vulkan_dir=$(dirname "$(find "$BOX_DIR/vulkan" -name 'libvulkan.so.1*' -print -quit)")
  export LD_LIBRARY_PATH="$vulkan_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  vulkan_lib="$vulkan_dir/libvulkan.so.1 (carried $(basename "${debs[0]}"))"
elif [[ $ldcache == *libvulkan.so.1* ]]; then
  vulkan_lib="the system's (ldconfig)"
fi
say "libvulkan.so.1: ${vulkan_lib:-NOT FOUND}"

# ---- the ICD: NVIDIA's, which must already be on the box (it comes with the driver) ----
shopt -s nullglob
icd=""
for f in /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/local/share/vulkan/icd.d/nvidia_icd*.json /usr/local/nvidia/icd.d/nvidia_icd*.json; do
  icd=$f; break
done
if [ -z "$icd" ] && [ "$SOFTWARE_OK" = 1 ]; then
  for f in /usr/share/vulkan/icd.d/lvp_icd*.json; do icd=$f; break; done
fi
shopt -u nullglob
icd_lib=""
if [ -n "$icd" ]; then
  export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
  icd_lib=$(sed -n 's/.*"library_path" *: *"\([^"]*\)".*/\1/p' "$icd")
  icd_lib_found=no
  if [[ $icd_lib == /* ]]; then [ -e "$icd_lib" ] && icd_lib_found=yes
  elif [[ $ldcache == *"$icd_lib"* ]]; then icd_lib_found=yes; fi
  say "Vulkan ICD: $icd (library $icd_lib: $icd_lib_found)"
else
  say "Vulkan ICD: no nvidia_icd.json in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d or /usr/local/nvidia/...: in a container the NVIDIA runtime adds it only with the 'graphics' driver capability (NVIDIA_DRIVER_CAPABILITIES=all or ...,graphics); Vulkan is also reported not to work under MIG or vGPU"
fi

# ---- the GPUs the driver sees ----
if command -v nvidia-smi > /dev/null; then
  smi=$(nvidia-smi -L 2>&1) || true
else
  smi="nvidia-smi: not found"
fi
say "nvidia-smi -L: $smi"

# ---- the adapter Dawn gives us ----
probe_args=()
[ "$SOFTWARE_OK" = 1 ] && probe_args+=(--software-ok)
[ -n "$EXPECT_VENDOR" ] && probe_args+=(--vendor "$EXPECT_VENDOR")
probe_rc=0
probe=$("$NODE" "$APP/bundle/probe.mjs" "${probe_args[@]}") || probe_rc=$?
probe=${probe##*$'\n'}
say "adapter: $probe"

BOX_GLIBC="$glibc" BOX_LIBSTDCXX="${libstdcxx:-}" BOX_GLIBCXX="$glibcxx" BOX_VULKAN="${vulkan_lib:-}" BOX_ICD="$icd" BOX_ICD_LIB="$icd_lib" \
BOX_SMI="$smi" BOX_PROBE="$probe" BOX_SOFTWARE_OK="$SOFTWARE_OK" BOX_DIR="$BOX_DIR" \
"$NODE" -e '
const e = process.env;
let adapter; try { adapter = JSON.parse(e.BOX_PROBE); } catch { adapter = { error: e.BOX_PROBE || "no output" }; }
const bundle = JSON.parse(require("fs").readFileSync(e.BOX_DIR + "/app/BUNDLE.json", "utf8"));
console.log(JSON.stringify({ glibc: e.BOX_GLIBC, libstdcxx: e.BOX_LIBSTDCXX, glibcxx_3_4_30: e.BOX_GLIBCXX === "yes", libvulkan: e.BOX_VULKAN,
  icd: e.BOX_ICD, icdLibrary: e.BOX_ICD_LIB, nvidiaSmi: e.BOX_SMI.split("\n"), softwareOk: e.BOX_SOFTWARE_OK === "1", adapter, bundle, boxDir: e.BOX_DIR }, null, 1));
' > "$OUT/env.json"

if [ "$probe_rc" -ne 0 ]; then
  say "REFUSED: no GPU numbers from this adapter (probe exit $probe_rc); the checks are in $OUT/env.json"
  exit 3
fi
