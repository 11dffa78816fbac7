#!/usr/bin/env bash
# Packs, here, what a lent GPU box (x86-64, NVIDIA driver, python3 + PyTorch, but no Node, no npm,
# no network) needs to run hybridps, into .devbox/ (gitignored; carry it with the run):
#   .devbox/node.xz              this machine's node binary, xz'd (reused while `node --version` is the same)
#   .devbox/app.tar.xz           scripts/gpu-box/bundle.mjs's output: the CLI and the benchmarks as
#                                plain JavaScript, shaders, and Dawn's linux-x64 dawn.node
#   .devbox/libvulkan1_*.deb     the Vulkan loader, unpacked under /tmp on the box (no root needed)
# Then on the box: bash scripts/gpu-box/step-vs-torch.sh (see docs/gpu.md, "On a lent GPU box").
# Prove it here first: bash scripts/gpu-box/prove-local.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
box=.devbox
mkdir -p "$box"
limit_mib=60

# XZ_LEVEL (node and app): 6 (default) makes node about 23 MiB in 1-3 minutes on 2 cores, 1 about 27 MiB in 15 s.
nodever=$(node --version)
if [ -f "$box/node.xz" ] && [ "$(cat "$box/node.version" 2>/dev/null)" = "$nodever" ]; then
  echo "[pack] node $nodever: reusing $box/node.xz (delete it to compress again)"
else
  echo "[pack] node $nodever: compressing $(readlink -f "$(command -v node)") (xz -${XZ_LEVEL:-6})"
  xz -T2 "-${XZ_LEVEL:-6}" -c "$(readlink -f "$(command -v node)")" > "$box/node.xz.tmp"
  mv "$box/node.xz.tmp" "$box/node.xz"
  echo "$nodever" > "$box/node.version"
fi

stage=$(mktemp -d /tmp/hybridps-pack.XXXXXX)
trap 'rm -rf "$stage"' EXIT
node scripts/gpu-box/bundle.mjs "$stage/app"
tar -C "$stage" -cf - app | xz -T2 "-${XZ_LEVEL:-6}" > "$box/app.tar.xz.tmp"
mv "$box/app.tar.xz.tmp" "$box/app.tar.xz"

debs=("$box"/libvulkan1_*_amd64.deb)
if [ ! -f "${debs[0]}" ]; then
  cached=(/var/cache/apt/archives/libvulkan1_*_amd64.deb)
  if [ -f "${cached[0]}" ]; then
    cp "${cached[-1]}" "$box/"
  elif [ "$(dpkg --print-architecture)" = amd64 ]; then
    (cd "$box" && apt-get download libvulkan1)
  else
    mkdir -p /tmp/hybridps-apt-amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/hybridps-apt-amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq && (cd "$box" && apt-get $o download libvulkan1:amd64)
  fi
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
total=0
for f in "$box"/node.xz "$box"/app.tar.xz "$box"/libvulkan1_*_amd64.deb; do
  b=$(stat -c %s "$f"); total=$((total + b))
  printf '[pack] %-40s %s MiB\n' "$f" "$(mib "$b")"
done
# The working tree travels too: tracked files and untracked ones git does not ignore.
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
echo "[pack] .devbox $(mib "$total") MiB + working tree $(mib "$tree") MiB = $(mib $((total + tree))) MiB (what travels must stay under 64 MiB)"
if [ $((total + tree)) -gt $((limit_mib * 1048576)) ]; then
  echo "[pack] over ${limit_mib} MiB: it will not travel" >&2
  exit 1
fi
echo "[pack] ready: carry .devbox; on the box run: bash scripts/gpu-box/step-vs-torch.sh"
