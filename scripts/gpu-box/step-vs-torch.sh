#!/usr/bin/env bash
# The GPU side-by-side in one call on a lent GPU box, from the repository root, carrying .devbox
# (built here by scripts/gpu-box/pack.sh):
#   bash scripts/gpu-box/step-vs-torch.sh [--software-ok] [--quick] [--no-torch] [--torch-device cuda|cpu] [--kernels-args "ARGS"]
# 1. box-env.sh: unpack under /tmp, print the checks (glibc, libvulkan, ICD, nvidia-smi -L, the
#    adapter), refuse a software adapter (exit 3) unless --software-ok;
# 2. ours, with the carried node and no dev dependency: the kernels benchmark (bench/kernels.ts)
#    and the full DLRM worker step at batch 2048 against a loopback server (bench/step.ts);
# 3. the PyTorch twin of the same step (torch_dlrm_step.py) on CUDA;
# 4. the side-by-side. Everything lands in $OUT (6 files): env.json, kernels.json, step.json,
#    torch.json, step-vs-torch.json, run.log. Each part has a time limit so the whole call stays
#    under 5 minutes; a part that fails is recorded and the call exits 1 after the rest ran.
# --quick: batch 512 and the kernels bench's quick shapes (the local proof on lavapipe uses it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
quick=() torch=1 torch_device=cuda kernels_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --software-ok) export SOFTWARE_OK=1 ;;
    --quick) quick=(--quick) ;;
    --no-torch) torch=0 ;;
    --torch-device) torch_device=$2; shift ;;
    --kernels-args) kernels_args=$2; shift ;;
    *) echo "usage: $0 [--software-ok] [--quick] [--no-torch] [--torch-device cuda|cpu] [--kernels-args \"ARGS\"]" >&2; exit 2 ;;
  esac
  shift
done
started=$(date +%s)
# shellcheck source=box-env.sh
source "$here/box-env.sh"

failed=()
part() { # part NAME LIMIT_S OUTFILE CMD...: runs CMD, its last stdout line (a JSON object) to OUTFILE
  local name=$1 limit=$2 outfile=$3 t0 rc=0; shift 3
  t0=$(date +%s)
  say "---- $name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$@" > "$BOX_DIR/$name.stdout" || rc=$?
  cat "$BOX_DIR/$name.stdout"
  if [ "$rc" -eq 0 ]; then
    tail -n 1 "$BOX_DIR/$name.stdout" > "$OUT/$outfile"
  else
    failed+=("$name")
    echo "{\"error\": \"$name exited $rc$([ "$rc" -eq 124 ] && echo ' (time limit)')\"}" > "$OUT/$outfile"
  fi
  say "$name: exit $rc in $(( $(date +%s) - t0 ))s"
}

batch=2048
[ ${#quick[@]} -gt 0 ] && batch=512
# shellcheck disable=SC2086
part kernels 120 kernels.json "$NODE" "$APP/bundle/kernels.mjs" --json "${quick[@]}" $kernels_args
part step 90 step.json "$NODE" "$APP/bundle/step.mjs" "${quick[@]}"
if [ "$torch" = 1 ]; then
  part torch 60 torch.json python3 "$here/torch_dlrm_step.py" 20 "$torch_device" "$batch"
else
  echo '{"skipped": "--no-torch"}' > "$OUT/torch.json"
fi

"$NODE" "$here/side-by-side.mjs" "$OUT" > "$OUT/step-vs-torch.json" || failed+=(side-by-side)
say "side-by-side: $(cat "$OUT/step-vs-torch.json")"
say "done in $(( $(date +%s) - started ))s; results in $OUT: $(cd "$OUT" && echo *)"
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
