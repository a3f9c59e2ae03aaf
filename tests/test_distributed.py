"""Data-parallel `fit` on 2 gloo processes: the same weights on each process as one
process training on the whole data, the same History, rank 0 alone writing, and a
process that dies takes the other down within the group's timeout.

The processes are real (started as scripts, one thread each, bounded by timeouts); the
reference is the same code run here without a process group.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rnnkit import distribution, losses
from rnnkit.training._parallel import loss_and_divisor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _distributed_worker as worker  # noqa: E402

WORKER = os.path.join(HERE, "_distributed_worker.py")
RUNS = ["lstm_sgd", "lstm_adam", "gru_sgd", "gru_adam"]


def _env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The four fits on 2 processes (distribution.launch), and here on one."""
    out = tmp_path_factory.mktemp("dp")
    single = tmp_path_factory.mktemp("single")
    done = subprocess.run(
        [sys.executable, WORKER, "train", str(out)],
        env=_env(),
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (out / "stdout.txt").write_text(done.stdout)
    torch.set_num_threads(1)
    worker.run_all(str(single))
    return out, single


def _load(path):
    with np.load(path) as f:
        weights = [f[k] for k in f.files if k.startswith("arr_")]
        return weights, json.loads(str(f["history"])), json.loads(str(f["evaluated"]))


@pytest.mark.parametrize("name", RUNS)
def test_every_rank_ends_with_the_single_process_weights_and_history(trained, name):
    out, single = trained
    w0, h0, e0 = _load(out / f"{name}_rank0.npz")
    w1, h1, e1 = _load(out / f"{name}_rank1.npz")
    ws, hs, es = _load(single / f"{name}_ranksingle.npz")
    for a, b, s in zip(w0, w1, ws, strict=True):
        np.testing.assert_array_equal(a, b)  # the same step everywhere: identical weights
        np.testing.assert_allclose(a, s, atol=1e-5, rtol=0)
    assert h0 == h1
    assert h0.keys() == hs.keys()
    for key in hs:  # the same epochs (EarlyStopping stopped both alike), global values
        np.testing.assert_allclose(h0[key], hs[key], atol=1e-5, rtol=1e-5)
    for key in es:
        assert e0[key] == pytest.approx(es[key], abs=1e-5)
        assert e1[key] == e0[key]


def test_early_stopping_stopped_before_the_last_epoch(trained):
    _, single = trained
    assert any(len(_load(single / f"{n}_ranksingle.npz")[1]["loss"]) < 5 for n in RUNS)


@pytest.mark.parametrize("name", RUNS)
def test_only_rank_0_writes_files(trained, name):
    out, _ = trained
    assert (out / f"{name}_rank0.rnnkit").exists()
    assert (out / f"{name}_rank0.csv").exists()
    assert not (out / f"{name}_rank1.rnnkit").exists()
    assert not (out / f"{name}_rank1.csv").exists()


def test_callbacks_print_their_verbose_messages_on_rank_0_only(trained):
    out, _ = trained
    printed = (out / "stdout.txt").read_text()
    for name in RUNS:  # ModelCheckpoint(verbose=1) names each rank's own file
        assert printed.count(f"saving model to {out / name}_rank0.rnnkit") >= 1
    assert "_rank1.rnnkit" not in printed
    stopped = sum(len(_load(out / f"{n}_rank0.npz")[1]["loss"]) < 5 for n in RUNS)
    assert printed.count("early stopping") == stopped  # EarlyStopping(verbose=1): once each


def test_a_dead_worker_makes_the_other_exit_nonzero_in_bounded_time(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = dict(WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "die", str(tmp_path)],
            env=_env(RANK=str(rank), **common),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for rank in (0, 1)
    ]
    start = time.monotonic()
    try:
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes[1] == 3
    assert codes[0] != 0, procs[0].stderr.read().decode()[-2000:]
    assert time.monotonic() - start < 45  # the 20 s gloo timeout, plus start-up
    assert not (tmp_path / "finished_rank0").exists()


def test_no_process_group_means_no_distribution():
    assert distribution.distribution() is None
    assert distribution.is_writer()
    with pytest.raises(ValueError, match="needs a torch.distributed process group"):
        distribution.DataParallel()
    with pytest.raises(TypeError, match="takes a DataParallel or None"):
        distribution.set_distribution("mirrored")


@pytest.mark.parametrize("n, rows", [(8, [4, 4]), (7, [4, 3]), (3, [2, 1]), (1, [1, 0])])
def test_a_global_batch_is_cut_into_contiguous_slices(n, rows):
    dp = object.__new__(distribution.DataParallel)
    dp.world_size = 2
    got = []
    for rank in (0, 1):
        dp.rank = rank
        s = dp.rows(n)
        got.append(s.stop - s.start)
    assert got == rows


def test_slices_weighted_by_their_divisor_give_the_batch_loss():
    """sum(loss_r * D_r) / sum(D_r) over the slices is the whole batch's loss."""
    torch.manual_seed(0)
    y_pred = torch.rand(6, 4, 3).softmax(-1)
    y = torch.randint(0, 3, (6, 4))
    mask = torch.rand(6, 4) > 0.3
    weight = torch.rand(6, 1)  # one weight per sequence
    loss_fn = losses.SparseCategoricalCrossentropy()
    for w in (None, weight):
        whole = loss_fn(y, y_pred, sample_weight=w, mask=mask)
        parts = [
            loss_and_divisor(loss_fn, y[s], y_pred[s], None if w is None else w[s], mask[s])
            for s in (slice(0, 4), slice(4, 6))
        ]
        total = sum(float(loss) * d for loss, d in parts) / sum(d for _, d in parts)
        assert total == pytest.approx(float(whole), abs=1e-6)


def _backup_run(out, backup_dir, kill_after):
    return subprocess.run(
        [sys.executable, WORKER, "backup", str(out), str(backup_dir), str(kill_after)],
        env=_env(),
        timeout=120,
        capture_output=True,
        text=True,
    )


def test_a_crashed_run_resumed_by_backup_and_restore_ends_as_one_never_stopped(tmp_path):
    """Both ranks exit after epoch 3 of 6 (the backup written), the same script runs again
    and resumes: every rank ends with the weights of a 2-process run never interrupted.
    The model has dropout on uneven slices, so each rank's random state must come back."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    whole.mkdir()
    resumed.mkdir()
    done = _backup_run(whole, tmp_path / "backup_whole", -1)
    assert done.returncode == 0, done.stderr[-3000:]
    crashed = _backup_run(resumed, tmp_path / "backup", 2)
    assert crashed.returncode != 0
    assert not list(resumed.iterdir())  # nothing finished
    assert (tmp_path / "backup" / "latest.rnnkit").exists()
    done = _backup_run(resumed, tmp_path / "backup", -1)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        np.testing.assert_allclose(
            np.load(resumed / f"backup_rank{rank}.npy"),
            np.load(whole / f"backup_rank{rank}.npy"),
            atol=1e-6,
            rtol=0,
        )
    assert not (tmp_path / "backup").exists()  # deleted when the resumed fit finished


def _forecast(out, *extra):
    """`rnnkit forecast` on the built-in data, 2 quick epochs, as its own process."""
    args = ["--epochs", "2", "--ensemble", "1", "--threads", "1", "--out", str(out), *extra]
    code = "from rnnkit.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "forecast", *args],
        env=_env(),
        timeout=120,
        capture_output=True,
        text=True,
    )


def test_forecast_with_two_workers_prints_and_writes_once_what_one_process_does(tmp_path):
    one = _forecast(tmp_path / "one")
    two = _forecast(tmp_path / "two", "--workers", "2")
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    for printed in ("Epoch 1/2", "Model: ", "Test set", "Wrote "):
        assert two.stdout.count(printed) == one.stdout.count(printed) == 1, two.stdout
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]  # nothing of rank 1's beside
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    scores = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two")]
    for key in ("rmse", "mae"):  # the same model: each step is the whole batch's step
        assert scores[1]["model"][key] == pytest.approx(scores[0]["model"][key], abs=1e-4)


def test_forecast_with_workers_reports_a_mistake_in_the_input_in_one_line(tmp_path):
    done = _forecast(tmp_path / "out", "--workers", "2", "--target", "nope")
    assert done.returncode == 1
    assert "has no column 'nope'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL)")
def test_nccl_on_two_gpus_keeps_the_ranks_equal_and_near_one_cpu_process(tmp_path):
    """NCCL on two GPUs: both ranks end with the same weights, those of one CPU process on
    the same batches within float32 rounding of the GPU kernels."""
    port = str(distribution._free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "nccl", str(tmp_path)],
            env=_env(RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
        )
        for r in range(2)
    ]
    try:
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0]
    ranks = [np.load(tmp_path / f"nccl_rank{r}.npz") for r in range(2)]
    for a, b in zip(ranks[0].files, ranks[1].files):
        np.testing.assert_array_equal(ranks[0][a], ranks[1][b])
    x, y = worker.data("gru")
    model = worker.build("gru", "adam")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    for mine, theirs in zip(model.get_weights(), (ranks[0][k] for k in ranks[0].files)):
        np.testing.assert_allclose(theirs, mine, atol=1e-4)
