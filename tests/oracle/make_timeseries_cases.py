"""Record what Keras' `timeseries_dataset_from_array` returns, for tests/test_data_timeseries.py.

Keras builds the windows with tf.data, so the oracle needs TensorFlow, which the test
environment does not install (it would pull a second large framework into CI). This script
runs Keras where TensorFlow is installed (benchmarks/constraints-bench.txt's venv) and
writes the batches it yields; the test compares rnnkit against them.

    .venv-bench/bin/python tests/oracle/make_timeseries_cases.py [OUT.json]
"""

from __future__ import annotations

import itertools
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "keras_timeseries_cases.json")


def cases():
    """Arguments covering each parameter, and their combinations on a short series."""
    for length, stride, rate, batch in itertools.product(
        (1, 3, 5), (1, 2, 3), (1, 2), (None, 1, 4, 128)
    ):
        yield {
            "rows": 20,
            "features": 2,
            "targets": "offset",
            "sequence_length": length,
            "sequence_stride": stride,
            "sampling_rate": rate,
            "batch_size": batch,
        }
    for start, end in ((None, 15), (3, None), (2, 17), (5, 9)):
        for targets in ("none", "offset", "same"):
            yield {
                "rows": 20,
                "features": 1,
                "targets": targets,
                "sequence_length": 3,
                "sampling_rate": 1,
                "sequence_stride": 2,
                "batch_size": 3,
                "start_index": start,
                "end_index": end,
            }
    yield {"rows": 12, "features": 0, "targets": "short", "sequence_length": 4, "batch_size": 2}
    yield {
        "rows": 30,
        "features": 3,
        "targets": "none",
        "sequence_length": 6,
        "sampling_rate": 3,
        "batch_size": 5,
    }


def arrays(case):
    rows, features = case["rows"], case["features"]
    data = np.arange(rows * max(features, 1), dtype="float32")
    data = data.reshape(rows, features) if features else data
    kind = case["targets"]
    targets = {
        "none": None,
        "same": np.arange(rows) * 10,
        "offset": np.arange(rows)[case["sequence_length"] :] * 10,
        "short": np.arange(5) * 10,
    }[kind]
    return data, targets


def keras_batches(case):
    data, targets = arrays(case)
    arguments = {k: v for k, v in case.items() if k not in ("rows", "features", "targets")}
    dataset = keras.utils.timeseries_dataset_from_array(data, targets, **arguments)
    out = []
    for item in dataset:
        if targets is None:
            out.append({"x": np.asarray(item).tolist()})
        else:
            out.append({"x": np.asarray(item[0]).tolist(), "y": np.asarray(item[1]).tolist()})
    return out


def main() -> None:
    records = []
    for case in cases():
        try:
            records.append({"case": case, "batches": keras_batches(case)})
        except Exception as err:  # Keras fails where targets run out before the data does
            records.append({"case": case, "error": type(err).__name__})
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    with open(out, "w") as f:
        json.dump({"keras": keras.__version__, "cases": records}, f, separators=(",", ":"))
    print(f"wrote {len(records)} cases to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
