"""One-sequence latency of a small forecaster: ONNX Runtime against rnnkit.

    .venv/bin/python benchmarks/export_latency.py [--calls 2000] [--cell GRU]

The model is forecasting-sized: GRU(16) over 14 steps x 6 features, then Dense(1). Each way
of running it gets the same `(1, 14, 6)` input, one thread each (torch.set_num_threads(1),
ONNX Runtime's intra- and inter-op pools of 1), the calls taking turns so that load
elsewhere hits them alike; the median of many calls is reported, in microseconds.

- onnxruntime: `session.run` on the file `model.export(..., format="onnx")` wrote.
- predict: `model.predict(x)` (numpy in and out, its checks and batching).
- model(x) no_grad: calling the model on a tensor under `torch.no_grad()`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np
import torch
from timing import time_interleaved

from rnnkit import layers
from rnnkit.layers import Dense, Input
from rnnkit.models import Sequential

STEPS, FEATURES, UNITS = 14, 6, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each")
    parser.add_argument("--cell", default="GRU", choices=["GRU", "LSTM", "SimpleRNN"])
    args = parser.parse_args()

    import onnxruntime as ort

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cell = getattr(layers, args.cell)
    model = Sequential([Input(shape=(STEPS, FEATURES)), cell(UNITS), Dense(1)])
    x = np.random.default_rng(0).normal(size=(1, STEPS, FEATURES)).astype("float32")
    x_tensor = torch.from_numpy(x)

    path = model.export(os.path.join(tempfile.mkdtemp(), "forecaster.onnx"), format="onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}

    def no_grad_call():
        with torch.no_grad():
            return model(x_tensor)

    ways = {
        "onnxruntime": lambda: session.run(None, feed),
        "predict": lambda: model.predict(x),
        "model(x) no_grad": no_grad_call,
    }
    gap = np.abs(session.run(None, feed)[0] - model.predict(x)).max()
    seconds = time_interleaved(ways, calls=args.calls, warmup=20)

    print(f"{args.cell}({UNITS}) over {STEPS} steps x {FEATURES} features, Dense(1); batch 1,")
    print(f"one thread; ONNX Runtime {ort.__version__}, torch {torch.__version__}")
    print(f"largest |onnxruntime - predict|: {gap:.1e}")
    fastest = min(statistics.median(s) for s in seconds.values())
    for name, times in seconds.items():
        median = statistics.median(times)
        print(
            f"  {name:18s} median {median * 1e6:8.1f} us  "
            f"({median / fastest:4.1f}x the fastest, {len(times)} calls)"
        )


if __name__ == "__main__":
    main()
