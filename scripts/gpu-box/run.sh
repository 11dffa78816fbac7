#!/usr/bin/env bash
# Runs one bundled entry on a lent GPU box with the carried node, after box-env.sh's checks
# (carry .devbox, built here by scripts/gpu-box/pack.sh):
#   bash scripts/gpu-box/run.sh [--software-ok] ENTRY [ARGS...]
#   ENTRY: hybridps (the CLI) | kernels (bench/kernels.ts) | step (bench/step.ts) | probe
#   e.g.  bash scripts/gpu-box/run.sh kernels --json       bash scripts/gpu-box/run.sh hybridps launch samples/dlrm --preset gpu
# Output goes to the terminal and to $OUT/run.log (with $OUT/env.json beside it). A software
# adapter is refused (exit 3) unless --software-ok. For the whole side-by-side use step-vs-torch.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = --software-ok ]; then export SOFTWARE_OK=1; shift; fi
entry=${1:?usage: run.sh [--software-ok] hybridps|kernels|step|probe [ARGS...]}
shift
# shellcheck source=box-env.sh
source "$here/box-env.sh"
[ -f "$APP/bundle/$entry.mjs" ] || { echo "no entry $entry (have: $(cd "$APP/bundle" && echo *.mjs))" >&2; exit 2; }
"$NODE" "$APP/bundle/$entry.mjs" "$@"
