#!/usr/bin/env bash
# The GPU side-by-side, in one call on a lent GPU box (after pack.sh's output was carried along):
#   bash scripts/gpu-box/step-vs-torch.sh
# Runs the kernels benchmark with the full DLRM worker step at batch 2048 (hybridps on Dawn/Vulkan)
# and the PyTorch CUDA twin of the same step (torch_dlrm_step.py), then prints both and the ratio.
# Results land in $OUT (gpu-run.log, torch.json, step-vs-torch.json) for bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp}"
python3 "$here/torch_dlrm_step.py" 20 | tee "$out/torch.json"
bash "$here/run.sh" bench/run.ts kernels --json
ours="$(tail -n 1 "$out/gpu-run.log")"
python3 - "$out" "$ours" <<'PY'
import json, sys
out, ours = sys.argv[1], json.loads(sys.argv[2])
torch = json.load(open(f"{out}/torch.json"))
s = ours["step"]
gpu_part = s["uploadMs"] + s["computeMs"] + s["downloadMs"] + s.get("denseMs", 0)
whole = sum(v for k, v in s.items() if k.endswith("Ms"))
res = {"batch": s["batch"], "torchStepMs": torch["torchStepMs"], "hybridpsGpuPartMs": gpu_part, "hybridpsStepMs": whole,
       "ratioGpuPart": gpu_part / torch["torchStepMs"], "ratioWholeStep": whole / torch["torchStepMs"], "device": torch["device"]}
json.dump(res, open(f"{out}/step-vs-torch.json", "w"))
print(json.dumps(res))
PY
