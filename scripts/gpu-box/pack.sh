#!/usr/bin/env bash
# Packs what a lent GPU machine (x86-64, NVIDIA driver, no Node, no network) needs to run the
# benchmarks: the node binary, the app with its production dependencies (Dawn for linux-x64 only)
# and the Vulkan loader .debs. Output, kept out of git: .devbox/node.xz, .devbox/app.tar.xz, .gl/.
# Then: run the command in scripts/gpu-box/run.sh on the device machine, carrying .devbox and .gl.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .devbox .gl
grep -qxF '/.devbox/' .git/info/exclude 2>/dev/null || echo '/.devbox/' >> .git/info/exclude
grep -qxF '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >> .git/info/exclude

echo "[pack] node $(node --version)"
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .devbox/node.xz

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r package.json package-lock.json src shaders bench samples scripts fbs "$stage"/ 2>/dev/null || true
(cd "$stage" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
# Dawn ships every platform's binary; the box needs linux-x64 only.
find "$stage/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 -type d ! -name linux-x64 -exec rm -rf {} +
tar -C "$stage" -cJf .devbox/app.tar.xz .
echo "[pack] app: $(du -h .devbox/app.tar.xz | cut -f1), node: $(du -h .devbox/node.xz | cut -f1)"

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1)
fi
echo "[pack] ready: carry .devbox and .gl; run scripts/gpu-box/run.sh on the box"
