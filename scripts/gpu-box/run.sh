#!/usr/bin/env bash
# Runs on the lent GPU machine, in the repository root, after pack.sh's output was carried along:
#   bash scripts/gpu-box/run.sh <command...>     e.g.  bash scripts/gpu-box/run.sh bench/run.ts kernels --json
# Installs the Vulkan loader, unpacks node and the app, checks the adapter Dawn sees, runs the
# command with that node (through tsx), and leaves its output in $OUT (when set).
set -euo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
ldconfig -p | grep -q libvulkan || { echo "no libvulkan after unpacking .gl" >&2; exit 1; }
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" && break
done
export XDG_RUNTIME_DIR=/tmp HYBRIDPS_SKIP_VULKAN_SETUP=1
xz -dc .devbox/node.xz > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/app && tar -xJf .devbox/app.tar.xz -C /tmp/app
cd /tmp/app
/tmp/node --import tsx --input-type=module -e "import { acquireGpu } from './src/gpu/device.ts'; const g = await acquireGpu(); console.log('adapter:', g.adapterName); await g.destroy(); process.exit(0);" || true
out="${OUT:-/tmp}"
/tmp/node --import tsx "$@" | tee "$out/gpu-run.log"
