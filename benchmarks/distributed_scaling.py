"""Data-parallel scaling on this machine: training samples/s on 1 and 2 processes.

    .venv/bin/python benchmarks/distributed_scaling.py            # ~2 minutes on 2 idle cores
    .venv/bin/python benchmarks/distributed_scaling.py --quick

For each workload (`benchmarks/workloads.py`: GRU(128) T=100 D=128 B=32, and the char
LSTM(256)) it times `fit` epochs in three set-ups: 1 process on 1 thread, 2 processes on 1
thread each (`rnnkit.distribution.launch`, gloo), and 1 process on 2 threads (the
same cores used by threads instead). The batch is global in every set-up (each of 2
processes steps on 16 of the 32 rows), so the work per epoch is the same. Scaling
efficiency = (2-process samples/s) / (2 x 1-process samples/s). The last column, 1 process
on 1 thread at half the batch (B=16), is each of the 2 processes' compute alone: twice it
is what 2 processes could reach with free communication, since a recurrent step at a
small batch is bound by its T sequential small products, not by its FLOPs. It also prints,
per step, the bytes the processes all-reduce (every gradient, float32) next to the
step's FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402

from rnnkit import Sequential, distribution, layers  # noqa: E402


def time_fit(name: str, steps: int, repeats: int, batch: int | None = None) -> float:
    """The fastest of `repeats` timed epochs of `steps` batches (of the workload's size,
    or `batch`), after one untimed; samples/s."""
    w = workloads.by_name(name)
    batch = batch or w.batch
    torch.manual_seed(0)
    x, y = workloads.make_data(w, batch * steps)
    model = workloads.build_keras_style(w, layers, Sequential)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    best = float("inf")
    for _ in range(repeats):
        if dist.is_initialized():
            dist.barrier()
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        if dist.is_initialized():
            dist.barrier()
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def _worker(name, steps, repeats, out):
    rate = time_fit(name, steps, repeats)
    if distribution.is_writer():
        with open(out, "w") as f:
            json.dump(rate, f)


def measure(name, workers, threads, steps, repeats) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rate.json")
        if workers == 1:
            torch.set_num_threads(threads)
            return time_fit(name, steps, repeats)
        distribution.launch(_worker, workers, (name, steps, repeats, out), threads=threads)
        with open(out) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, gloo on localhost")
    print(
        "| workload | params | all-reduce/step | train FLOPs/step | 1 proc x 1 thread | "
        "2 procs x 1 thread | efficiency | 1 proc x 2 threads | 1 proc x 1 thread, B/2 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("gru", "char_lstm"):
        w = workloads.by_name(name)
        steps, repeats = (w.quick_steps, 1) if args.quick else (w.steps, 3)
        model = workloads.build_keras_style(w, layers, Sequential)
        model.build((None, w.timesteps, w.features))
        params = sum(p.numel() for p in model.trainable_weights)
        one = measure(name, 1, 1, steps, repeats)
        two = measure(name, 2, 1, steps, repeats)
        threads = measure(name, 1, 2, steps, repeats)
        torch.set_num_threads(1)
        half = time_fit(name, steps, repeats, batch=w.batch // 2)
        flops = w.train_flops_per_sample() * w.batch
        print(
            f"| {w.title} | {params:,} | {params * 4 / 2**20:.2f} MiB | {flops / 1e9:.2f} G | "
            f"{one:.0f}/s | {two:.0f}/s | {two / (2 * one):.0%} | {threads:.0f}/s | {half:.0f}/s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
