#!/usr/bin/env python3
"""Gloo's allreduce (PyTorch torch.distributed, backend gloo: ring algorithms over TCP) on
loopback, as the comparison for bench/allreduce.ts: W processes, float32 buffers of the given
sizes, sum, back-to-back repetitions, each repetition's time = the slowest rank's.

usage: gloo_allreduce.py WORKERS REPS_JSON SIZE_BYTES...   (REPS_JSON: {"<bytes>": reps, ...})
prints one JSON line: {"workers": W, "torch": version, "results": {"<bytes>": [seconds, ...]},
"cpuMs": {"<bytes>": CPU ms per op, a rank's process time (all its threads: Gloo's I/O and
reduction threads), averaged over the ranks}}
"""
import json, os, socket, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rank, world, port, sizes, reps, queue):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)  # one core's worth per rank, like one Node process
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    for nbytes in sizes:
        t = torch.ones(nbytes // 4, dtype=torch.float32)
        dist.all_reduce(t)  # warm-up (and connection set-up)
        times, cpu = [], 0.0
        for _ in range(reps[str(nbytes)]):
            t.fill_(1.0)  # sums of sums would overflow after many reps
            c0 = time.process_time()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
            cpu += time.process_time() - c0
        if t[0].item() != world:
            raise RuntimeError(f"wrong sum {t[0].item()}, expected {world}")
        tt = torch.tensor(times, dtype=torch.float64)
        dist.all_reduce(tt, op=dist.ReduceOp.MAX)
        out[str(nbytes)] = tt.tolist()
        cc = torch.tensor([cpu * 1000 / len(times) / world], dtype=torch.float64)
        dist.all_reduce(cc)  # sum of the ranks' means / W: the mean over ranks
        out["cpu:" + str(nbytes)] = cc.item()
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def main():
    world, reps, sizes = int(sys.argv[1]), json.loads(sys.argv[2]), [int(s) for s in sys.argv[3:]]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=run, args=(r, world, port, sizes, reps, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results = queue.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise SystemExit(f"rank process exited with {p.exitcode}")
    cpu = {k[4:]: v for k, v in results.items() if k.startswith("cpu:")}
    times = {k: v for k, v in results.items() if not k.startswith("cpu:")}
    print(json.dumps({"workers": world, "torch": torch.__version__, "results": times, "cpuMs": cpu}))


if __name__ == "__main__":
    main()
