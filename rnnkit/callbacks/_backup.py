"""`BackupAndRestore`: resume a `fit` that was interrupted, as if it never stopped.

Every epoch it saves a training checkpoint (`rnnkit.saving.save_checkpoint`: weights,
optimizer state and the state of every random generator). When `fit` starts again with
the same code and finds a checkpoint, it loads it and training goes on from the next
epoch: the same shuffles, the same dropout masks, the same final weights as a run that
was never interrupted.
"""

from __future__ import annotations

import contextlib
import os

from rnnkit import distribution
from rnnkit.callbacks._base import Callback
from rnnkit.callbacks._monitor import check_save_freq
from rnnkit.saving import load_checkpoint, save_checkpoint


class BackupAndRestore(Callback):
    """Back up the training state every epoch and restore it when `fit` restarts.

    Args:
        backup_dir: a folder for this run's backup alone (created if needed).
        save_freq: `"epoch"` (exact resumption), or back up every this many batches; a run
            resumed from a mid-epoch backup restarts that epoch with the backed-up weights,
            as in Keras, so it does not repeat the uninterrupted run exactly.
        double_checkpoint: keep the previous backup too, and fall back to it if the latest
            cannot be read.
        delete_checkpoint: delete the backup when `fit` finishes (also when a callback
            stopped it early); False keeps it.

    Put it last in `callbacks=[...]`: the backup then holds what the other callbacks
    changed at the end of the epoch (e.g. a learning rate ReduceLROnPlateau lowered).
    The callbacks' own counters (EarlyStopping's patience, ...) are not backed up.
    On many processes (`rnnkit.distribution`) rank 0 writes the backup, with every
    process's random state, and every process reads it (after a barrier, so all resume
    from the same file), so `backup_dir` must be on a disk they share.

    Example:
        >>> backup = BackupAndRestore("backup/run1")
        >>> # model.fit(x, y, epochs=100, callbacks=[backup])  # run again after a crash
    """

    def __init__(
        self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True
    ):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(
                f"BackupAndRestore: backup_dir must be a folder path, e.g. 'backup/run1'; got "
                f"{backup_dir!r}."
            )
        check_save_freq("BackupAndRestore", save_freq)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.checkpoint_path = os.path.join(self.backup_dir, "latest.rnnkit")
        self._previous_path = os.path.join(self.backup_dir, "previous.rnnkit")
        self._current_epoch = 0
        self._batches_since_save = 0
        if save_freq != "epoch":
            # Only then a batch hook: fit computes batch logs (a device sync) for batch hooks.
            self.on_train_batch_end = self._on_train_batch_end

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        # Wait until rank 0 has deleted the backup of a fit that just finished (on_train_end)
        # before looking for one: every process must find the same files.
        distribution.barrier()
        info = self._load()
        if info is not None:
            # An epoch-end backup resumes at the next epoch; a mid-epoch one redoes its epoch.
            batch = (info["extra"] or {}).get("batch")
            self.model.initial_epoch = info["epoch"] + (1 if batch is None else 0)

    def _load(self):
        paths = [self.checkpoint_path]
        if self.double_checkpoint:
            paths.append(self._previous_path)
        paths = [p for p in paths if os.path.exists(p)]
        for i, path in enumerate(paths):
            try:
                return load_checkpoint(self.model, path)
            except ValueError:
                if i == len(paths) - 1:
                    raise
        return None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None)

    def _save(self, epoch, batch):
        if distribution.is_writer():  # the others wait in save_checkpoint until it is written
            os.makedirs(self.backup_dir, exist_ok=True)
            if self.double_checkpoint and os.path.exists(self.checkpoint_path):
                os.replace(self.checkpoint_path, self._previous_path)
        save_checkpoint(self.model, self.checkpoint_path, epoch, extra={"batch": batch})

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            distribution.rank_zero_writes(self._delete)()

    def _delete(self):
        for path in (self.checkpoint_path, self._previous_path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        with contextlib.suppress(OSError):  # keep a folder that holds files of someone else
            os.rmdir(self.backup_dir)
