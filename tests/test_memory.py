"""Training keeps large freed blocks in the process (rnnkit/training/_memory.py).

Each case runs in a fresh interpreter, since malloc's settings last for the process. The
oracle is the kernel's count of page faults (`ru_minflt`): buffers freed and made again, as
each training step does, fault on every 4 KB page when their memory went back to the OS.
"""

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc's thresholds are glibc's",
)

SCRIPT = """
import json, resource
import numpy as np
import torch
from rnnkit import Sequential, layers
from rnnkit.training import _memory

model = Sequential([layers.SimpleRNN(4, input_shape=(3, 2)), layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(np.zeros((8, 3, 2), "float32"), np.zeros((8, 1), "float32"), epochs=1, verbose=0)

def step():  # two 8 MB buffers made, written and freed, as a recurrent layer's in one step
    a, b = torch.empty(2 * 2**20), torch.empty(2 * 2**20)
    a.fill_(1.0)
    b.fill_(1.0)
    del a, b

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": _memory._state.get("applied"), "faults": faults}))
"""
PAGES = 5 * 2 * (8 * 2**20 // 4096)  # pages written in the measured steps


def run(env_value=None):
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    if env_value is not None:
        env["RNNKIT_KEEP_FREED_MEMORY"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_fit_freed_buffers_are_reused_without_page_faults():
    result = run()
    assert result["applied"] is True, "fit did not set malloc's thresholds"
    assert result["faults"] < 0.05 * PAGES, (
        f"{result['faults']} page faults for {PAGES} pages written again: freed buffers "
        "went back to the OS"
    )


def test_the_environment_variable_leaves_malloc_alone():
    result = run("0")
    assert result["applied"] is False
