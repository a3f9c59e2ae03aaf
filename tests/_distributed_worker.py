"""Worker processes for test_distributed.py (run as a script; the test starts it).

    python tests/_distributed_worker.py train OUT    # 2 processes via distribution.launch
    python tests/_distributed_worker.py die OUT      # one of 2, from the environment (RANK...)
    python tests/_distributed_worker.py nccl OUT     # one of 2 on GPU `RANK`, NCCL (RANK...)
    python tests/_distributed_worker.py backup OUT BACKUP_DIR KILL_AFTER
                                                     # 2 processes; both exit after that
                                                     # epoch (-1: never), as a crash would

`run_all(out)` is also what the test runs on one process, as the reference.
"""

import datetime
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from rnnkit import Sequential, callbacks, distribution, optimizers
from rnnkit.layers import GRU, LSTM, Dense, Dropout, Embedding, Input


def data(kind):
    rng = np.random.default_rng(7)
    if kind == "lstm":  # padded id sequences, right-padded with 0 (masked)
        x = rng.integers(1, 20, size=(45, 7))
        lengths = rng.integers(2, 8, size=45)
        x[np.arange(7)[None, :] >= lengths[:, None]] = 0
        return x, rng.integers(0, 3, size=45)
    x = rng.normal(size=(37, 6, 3)).astype("float32")
    return x, (x[:, :, 0].sum(1, keepdims=True) * 0.5).astype("float32")


def build(kind, optimizer):
    torch.manual_seed(0)
    if kind == "lstm":
        model = Sequential([Embedding(20, 8, mask_zero=True), LSTM(6), Dense(3, "softmax")])
        loss, metric = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        model = Sequential([Input((6, 3)), GRU(5), Dense(1)])
        loss, metric = "mse", ["mae"]
    opt = optimizers.SGD(0.1) if optimizer == "sgd" else optimizers.Adam(0.01)
    model.compile(optimizer=opt, loss=loss, metrics=metric)
    return model


def run_all(out):
    """Four fits (masked Embedding+LSTM and GRU, SGD and Adam); writes one .npz per fit and
    rank, and each rank's checkpoint and CSV under its own name."""
    rank = dist.get_rank() if dist.is_initialized() else "single"
    for kind in ("lstm", "gru"):
        for optimizer in ("sgd", "adam"):
            name = f"{kind}_{optimizer}"
            x, y = data(kind)
            model = build(kind, optimizer)
            stop = callbacks.EarlyStopping("val_loss", patience=1, min_delta=0.05, verbose=1)
            batch_size = 7 if kind == "lstm" else 8  # last batches of 3 and 5 rows: uneven
            history = model.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=5,
                verbose=0,
                validation_split=0.2,
                callbacks=[
                    stop,
                    callbacks.ModelCheckpoint(
                        os.path.join(out, f"{name}_rank{rank}.rnnkit"), verbose=1
                    ),
                    callbacks.CSVLogger(os.path.join(out, f"{name}_rank{rank}.csv")),
                ],
            )
            evaluated = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
            np.savez(
                os.path.join(out, f"{name}_rank{rank}.npz"),
                *model.get_weights(),
                history=json.dumps(history.history),
                evaluated=json.dumps(evaluated),
            )


def die(out):
    """Rank 1 dies after its first epoch; rank 0 must fail in its next collective."""
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=20))
    x, y = data("gru")
    model = build("gru", "sgd")
    quit_ = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: rank == 1 and os._exit(3))
    model.fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[quit_])
    open(os.path.join(out, f"finished_rank{rank}"), "w").close()  # never reached


def backup(out, backup_dir, kill_after):
    """A fit with dropout and BackupAndRestore; every rank `os._exit`s after epoch
    `kill_after` (once its backup is written), as in a crash; -1 runs to the end."""
    rank = dist.get_rank()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(37, 6, 3)).astype("float32")
    y = (x[:, :, 0].sum(1, keepdims=True) * 0.5).astype("float32")
    torch.manual_seed(0)
    model = Sequential(
        [Input((6, 3)), GRU(5, dropout=0.2, recurrent_dropout=0.1), Dropout(0.3), Dense(1)]
    )
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse")

    def crash(epoch, logs):
        if epoch == kill_after:
            os._exit(5)

    model.fit(  # batches of 8 and a last one of 5: slices of 3 and 2 rows, uneven
        x,
        y,
        batch_size=8,
        epochs=6,
        verbose=0,
        callbacks=[
            callbacks.BackupAndRestore(backup_dir),
            callbacks.LambdaCallback(on_epoch_end=crash),
        ],
    )
    np.save(
        os.path.join(out, f"backup_rank{rank}.npy"),
        np.concatenate([w.ravel() for w in model.get_weights()]),
    )


def nccl(out):
    """The GRU fit with Adam on GPU `RANK` in an NCCL group; writes this rank's weights."""
    rank = int(os.environ["RANK"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=60))
    x, y = data("gru")
    model = build("gru", "adam").to(f"cuda:{rank}")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    np.savez(os.path.join(out, f"nccl_rank{rank}.npz"), *model.get_weights())
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    command, out = sys.argv[1], sys.argv[2]
    if command == "train":
        distribution.launch(run_all, workers=2, args=(out,), timeout=60, threads=1)
    elif command == "backup":
        args = (out, sys.argv[3], int(sys.argv[4]))
        distribution.launch(backup, workers=2, args=args, timeout=60, threads=1)
    elif command == "nccl":
        nccl(out)
    else:
        die(out)
