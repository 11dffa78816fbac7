#!/usr/bin/env bash
# Proves the GPU-box recipe here, on lavapipe, before any GPU time is spent: packs (pack.sh), then
# copies only what travels to the box and is used there (scripts/gpu-box/ and .devbox/) into an
# empty directory under /tmp, with no node_modules on any path above it and `node`, `npm`, `npx`
# and `tsx` on PATH replaced by stubs that fail, and from there runs
#   1. step-vs-torch.sh without --software-ok: must refuse lavapipe (exit 3) before any benchmark;
#   2. run.sh --software-ok hybridps --help: the bundled CLI;
#   3. step-vs-torch.sh --software-ok --quick --kernels-args --only=bot (torch on the CPU when it
#      is installed, else --no-torch): the whole side-by-side at small sizes;
#   4. run.sh --software-ok hybridps launch samples/dlrm (3 small steps): training from the bundle.
# Usage: bash scripts/gpu-box/prove-local.sh [--no-pack] [KEEP_DIR]   (prints the directory; exit 0 = proved)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
pack=1
[ "${1:-}" = --no-pack ] && { pack=0; shift; }
[ "$pack" = 1 ] && bash "$repo/scripts/gpu-box/pack.sh"

box=${1:-$(mktemp -d /tmp/hybridps-prove.XXXXXX)}
mkdir -p "$box/scripts/gpu-box" "$box/stubs"
cp "$repo"/scripts/gpu-box/*.sh "$repo"/scripts/gpu-box/*.mjs "$repo"/scripts/gpu-box/*.py "$box/scripts/gpu-box/"
rm -f "$box/scripts/gpu-box/prove-local.sh" "$box/scripts/gpu-box/pack.sh" "$box/scripts/gpu-box/bundle.mjs" # build-side only
cp -r "$repo/.devbox" "$box/.devbox"
for d in "$box" $(p=$box; while [ "$p" != / ]; do p=$(dirname "$p"); echo "$p"; done); do
  [ ! -e "$d/node_modules" ] || { echo "[prove] $d/node_modules exists: the proof needs no node_modules above $box" >&2; exit 1; }
done
for t in node npm npx tsx; do
  printf '#!/bin/sh\necho "[prove] %s was called: the box has none" >&2\nexit 97\n' "$t" > "$box/stubs/$t"
  chmod +x "$box/stubs/$t"
done
torch=(--no-torch)
if python3 -c 'import torch' 2> /dev/null; then torch=(--torch-device cpu); fi

cd "$box"
export PATH="$box/stubs:$PATH"
unset NODE_OPTIONS NODE_PATH
echo "[prove] in $box"

rc=0
OUT="$box/out-refuse" bash scripts/gpu-box/step-vs-torch.sh --quick --no-torch > "$box/refuse.log" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || { echo "[prove] step-vs-torch.sh on lavapipe without --software-ok exited $rc, expected 3 (refused)" >&2; cat "$box/refuse.log" >&2; exit 1; }
[ ! -e "$box/out-refuse/kernels.json" ] || { echo "[prove] a benchmark ran despite the refusal" >&2; exit 1; }
echo "[prove] 1. software adapter refused without --software-ok"

OUT="$box/out-cli" bash scripts/gpu-box/run.sh --software-ok hybridps --help > "$box/cli.log" 2>&1 || { cat "$box/cli.log" >&2; exit 1; }
echo "[prove] 2. bundled CLI runs"

OUT="$box/out" bash scripts/gpu-box/step-vs-torch.sh --software-ok --quick --kernels-args --only=bot "${torch[@]}"
echo "[prove] 3. side-by-side ran; results in $box/out"

# Training from the bundle: its own synthetic data, a scheduler, a server and a worker as child
# processes of the bundled CLI, the worker's data thread (bundle/data-thread-main.mjs) included.
OUT="$box/out-train" bash scripts/gpu-box/run.sh --software-ok hybridps launch samples/dlrm --samples 4000 --steps 3 --batch 64 --workers 1 --servers 1 > "$box/train.log" 2>&1 \
  || { cat "$box/train.log" >&2; echo "[prove] the bundled launch failed" >&2; exit 1; }
grep -q '^trained dlrm, 3 steps' "$box/train.log" || { cat "$box/train.log" >&2; echo "[prove] the bundled launch did not train 3 steps" >&2; exit 1; }
echo "[prove] 4. bundled launch trained 3 steps"
