#!/usr/bin/env python3
"""PyTorch CUDA twin of hybridps's DLRM worker step, for the side-by-side on a lent GPU box.

Same shape as DLRM_PRESETS.gpu (src/model/dlrm.ts): 26 tables x 100k rows x dim 64, bottom MLP
13-512-256-64, pairwise-dot interaction without self pairs concatenated with the bottom output,
top MLP 415-512-256-1, sigmoid + BCE (mean), batch 2048, one id per table per sample. One step =
host->device copy of the batch, forward, loss, backward, SGD on the dense parameters and sparse
SGD on the touched embedding rows, then a sync. Prints one JSON line: median milliseconds.
usage: torch_dlrm_step.py [STEPS] [cuda|cpu] [BATCH]. Embeddings live on the device here (no parameter server), so compare it with hybridps's
upload + compute + download (+ dense), and with the whole step, in bench/RESULTS.md.
"""
import json, sys, time
import torch
import torch.nn as nn

B = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
T, ROWS, D = 26, 100_000, 64
BOTTOM, TOP = [13, 512, 256, 64], [512, 256, 1]
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
DEVICE = sys.argv[2] if len(sys.argv) > 2 else "cuda"   # "cpu" for a CPU reference (no GPU box)

def mlp(widths, last_relu):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths) or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)

class DLRM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.ModuleList([nn.EmbeddingBag(ROWS, D, mode="sum", sparse=True) for _ in range(T)])
        self.bottom = mlp(BOTTOM, True)
        F = T + 1
        self.top = mlp([D + F * (F - 1) // 2] + TOP, False)
        self.li, self.lj = torch.tril_indices(F, F, offset=-1)

    def forward(self, x, ids, offsets):
        z = self.bottom(x)
        e = [bag(ids[:, t].contiguous(), offsets) for t, bag in enumerate(self.emb)]
        feats = torch.stack([z] + e, dim=1)                      # [B, F, D]
        dots = torch.bmm(feats, feats.transpose(1, 2))[:, self.li, self.lj]
        return self.top(torch.cat([z, dots], dim=1)).squeeze(1)

def main():
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"})); sys.exit(1)
    dev = torch.device(DEVICE)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    torch.manual_seed(1)
    model = DLRM().to(dev)
    dense = [p for n, p in model.named_parameters() if not n.startswith("emb.")]
    sparse = [p for n, p in model.named_parameters() if n.startswith("emb.")]
    opt_dense = torch.optim.SGD(dense, lr=0.05)
    opt_sparse = torch.optim.SGD(sparse, lr=0.05)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(4):  # pinned host batches, as a data loader would hand them over
        pin = (lambda t: t.pin_memory()) if DEVICE == "cuda" else (lambda t: t)
        x = pin(torch.log1p(torch.rand(B, 13, generator=g) * 100))
        ids = pin((torch.rand(B, T, generator=g) ** 3 * ROWS).long())   # skewed, like click logs
        y = pin((torch.rand(B, generator=g) < 0.25).float())
        batches.append((x, ids, y))
    offsets = torch.arange(B, device=dev)
    times = []
    for i in range(STEPS + 5):
        x, ids, y = batches[i % len(batches)]
        sync()
        t0 = time.perf_counter()
        xd, idd, yd = x.to(dev, non_blocking=True), ids.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss = loss_fn(model(xd, idd, offsets), yd)
        opt_dense.zero_grad(set_to_none=True); opt_sparse.zero_grad(set_to_none=True)
        loss.backward()
        opt_dense.step(); opt_sparse.step()
        sync()
        if i >= 5:
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(json.dumps({"torchStepMs": times[len(times) // 2], "batch": B, "steps": STEPS,
                      "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))

if __name__ == "__main__":
    main()
