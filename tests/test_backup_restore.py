"""BackupAndRestore against a real crash: a training process is SIGKILLed mid-epoch,
started again with the same code, and must end with the weights of a run never killed.

The model has dropout (input, recurrent and a Dropout layer) and fit shuffles, so the
resumed run repeats the uninterrupted one only if the backup restored every random state.
"""

import json
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np

SCRIPT = """
import sys, time
import numpy as np
import rnnkit
from rnnkit.callbacks import BackupAndRestore, LambdaCallback
from rnnkit.layers import Dense, Dropout, SimpleRNN

backup_dir, out, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
rnnkit.utils.set_random_seed(7)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 5, 1)).astype("float32")
y = x.sum(axis=(1, 2))[:, None]
model = rnnkit.Sequential([
    SimpleRNN(6, input_shape=(5, 1), dropout=0.2, recurrent_dropout=0.1),
    Dropout(0.3),
    Dense(1),
])
model.compile(optimizer="adam", loss="mse")
slow = LambdaCallback(on_train_batch_begin=lambda batch, logs: time.sleep(pause))
history = model.fit(
    x, y, epochs=EPOCHS, batch_size=8, shuffle=True, validation_split=0.25, verbose=0,
    callbacks=[slow, BackupAndRestore(backup_dir)],
)
np.save(out, np.concatenate([w.ravel() for w in model.get_weights()]))
print("epochs run:", history.epoch, flush=True)
"""

EPOCHS = 6
PAUSE = 0.05  # per batch: 6 batches make an epoch of about 0.3 s, so the kill lands inside one


def _backed_up_epoch(path):
    """The epoch of the backup at `path`, or None while there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("checkpoint.json"))["epoch"]
    except (FileNotFoundError, KeyError, zipfile.BadZipFile):
        return None


def _start(script, backup_dir, out, pause):
    return subprocess.Popen(
        [sys.executable, str(script), str(backup_dir), str(out), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout=60):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return stdout


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.replace("EPOCHS", str(EPOCHS)))
    backup_dir = tmp_path / "backup"
    backup = backup_dir / "latest.rnnkit"

    # The uninterrupted run, alongside the one that will be killed.
    reference = _start(script, tmp_path / "unused", tmp_path / "reference.npy", 0.0)
    victim = _start(script, backup_dir, tmp_path / "never.npy", PAUSE)
    deadline = time.monotonic() + 60
    while _backed_up_epoch(backup) != 2:
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "no backup of epoch 2 within 60 s"
        time.sleep(0.01)
    time.sleep(2 * PAUSE)  # a couple of batches into epoch 3
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert _backed_up_epoch(backup) == 2  # killed inside epoch 3, before its backup
    assert not (tmp_path / "never.npy").exists()

    resumed = _start(script, backup_dir, tmp_path / "resumed.npy", 0.0)
    assert "epochs run: [3, 4, 5]" in _finish(resumed)
    assert "epochs run: [0, 1, 2, 3, 4, 5]" in _finish(reference)
    np.testing.assert_array_equal(
        np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "reference.npy")
    )
    assert not backup_dir.exists()  # the finished run deleted its backup
