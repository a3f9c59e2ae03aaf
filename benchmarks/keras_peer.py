"""The Keras 3 peer, run in a subprocess per backend: `KERAS_BACKEND` must be set before import.

    python benchmarks/keras_peer.py JOB.json RESULT.json

JOB.json: `{"backend": "jax", "device": "cpu", "train": [[name, steps, epochs], ...],
"latency": [[name, workload, timesteps, calls], ...]}`. RESULT.json gets the versions, the
device the backend put its arrays on, the epoch seconds of `model.fit(x, y, batch_size,
epochs, shuffle=False)` per workload, and the seconds per `model.predict(x)` and per
`model(x)` call on one sequence.

Each backend takes a GPU by itself when it sees one: for "cpu" the GPU is hidden from it
before the import; for "cuda" float32 products are kept in full float32 (no TF32), as in
the benchmark process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback

from timing import time_calls
from workloads import build_keras_style, by_name, make_data


def main(job_path: str, result_path: str) -> None:
    start = time.perf_counter()
    with open(job_path) as f:
        job = json.load(f)
    backend, device = job["backend"], job.get("device", "cpu")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # torch and TensorFlow: no GPU to pick
        os.environ["JAX_PLATFORMS"] = "cpu"  # JAX with its CUDA plugins installed

    import importlib

    import keras

    lib = importlib.import_module(backend)
    if device == "cuda":
        _full_float32(backend, lib)
    sync = lib.cuda.synchronize if backend == "torch" and device == "cuda" else lambda: None
    result = {
        "backend": backend,
        "versions": {"keras": keras.__version__, backend: lib.__version__},
        "device": _device_used(backend, lib),
        "train": {},
        "latency": {},
        "errors": {},
    }

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            sync()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # logs are floats here: the epoch has ended
            sync()
            self.seconds.append(time.perf_counter() - self.start)

    def save(name):
        with open(result_path, "w") as f:
            json.dump(result, f)
        print(f"[keras-{backend} {time.perf_counter() - start:6.1f}s] {name} done", file=sys.stderr)

    for name, steps, epochs in job["train"]:
        try:
            w = by_name(name)
            x, y = make_data(w, w.batch * steps)
            keras.utils.set_random_seed(0)
            model = build_keras_style(w, keras.layers, keras.Sequential)
            timer = EpochTimer()
            model.fit(
                x, y, batch_size=w.batch, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer]
            )
            result["train"][name] = timer.seconds
        except Exception:
            result["errors"][name] = traceback.format_exc(limit=3)
        save(name)  # a later timeout still leaves what was measured

    for name, workload, timesteps, calls in job["latency"]:
        try:
            w = dataclasses.replace(by_name(workload), timesteps=timesteps)
            x, _ = make_data(w, 1)
            keras.utils.set_random_seed(0)
            model = build_keras_style(w, keras.layers, keras.Sequential)
            result["latency"][name] = _latency(model, x, calls, sync)
        except Exception:
            result["errors"][name] = traceback.format_exc(limit=3)
        save(name)


def _latency(model, x, calls: int, sync) -> dict[str, list[float]]:
    """Seconds per `model.predict(x)` and per `model(x)` call."""

    def call():
        y = _ready(model(x, training=False))
        sync()
        return y

    return {
        "predict": time_calls(lambda: model.predict(x, verbose=0), calls),
        "call": time_calls(call, calls),
    }


def _ready(y):
    """Wait for the result (JAX dispatches asynchronously), so a call's time is all of it."""
    return y.block_until_ready() if hasattr(y, "block_until_ready") else y


def _full_float32(backend: str, lib) -> None:
    """No TF32 in float32 products on the GPU (torch's cuDNN, JAX and TensorFlow default to
    it on recent GPUs), as rnnkit and the torch peer run."""
    if backend == "torch":
        lib.backends.cudnn.allow_tf32 = False
        lib.backends.cuda.matmul.allow_tf32 = False
    elif backend == "jax":
        lib.config.update("jax_default_matmul_precision", "highest")
    else:
        lib.config.experimental.enable_tensor_float_32_execution(False)


def _device_used(backend: str, lib) -> str:
    """Where the backend puts its arrays: "cuda" or "cpu"."""
    if backend == "torch":
        return "cuda" if lib.cuda.is_available() else "cpu"
    if backend == "jax":
        return "cuda" if lib.devices()[0].platform == "gpu" else lib.devices()[0].platform
    return "cuda" if lib.config.list_physical_devices("GPU") else "cpu"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stderr.flush()
    os._exit(0)  # skip the interpreter's teardown of big autograd graphs (seconds, on torch)
