"""The Keras 3 peer, run in a subprocess per backend: `KERAS_BACKEND` must be set before import.

    python benchmarks/keras_peer.py JOB.json RESULT.json

JOB.json: `{"backend": "jax", "train": [[name, steps, epochs], ...],
"latency": [[name, workload, timesteps, calls], ...]}`. RESULT.json gets the versions, the
epoch seconds of `model.fit(x, y, batch_size, epochs, shuffle=False)` per workload, and
the seconds per `model.predict(x)` and per `model(x)` call on one sequence.
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
    backend = job["backend"]
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

    import importlib

    import keras

    lib = importlib.import_module(backend)
    result = {
        "backend": backend,
        "versions": {"keras": keras.__version__, backend: lib.__version__},
        "train": {},
        "latency": {},
        "errors": {},
    }

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # logs are floats here: the epoch has ended
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
            result["latency"][name] = _latency(model, x, calls)
        except Exception:
            result["errors"][name] = traceback.format_exc(limit=3)
        save(name)


def _latency(model, x, calls: int) -> dict[str, list[float]]:
    """Seconds per `model.predict(x)` and per `model(x)` call."""
    return {
        "predict": time_calls(lambda: model.predict(x, verbose=0), calls),
        "call": time_calls(lambda: _sync(model(x, training=False)), calls),
    }


def _sync(y):
    """Wait for the result (JAX dispatches asynchronously), so a call's time is all of it."""
    return y.block_until_ready() if hasattr(y, "block_until_ready") else y


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stderr.flush()
    os._exit(0)  # skip the interpreter's teardown of big autograd graphs (seconds, on torch)
