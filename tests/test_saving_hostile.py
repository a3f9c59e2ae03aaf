"""rnnkit.saving against awkward destinations (issue 15, item 9).

Saving: permission bits, symlinks, temporaries that killed saves leave, unwritable folders.
"""

import os
import stat
import time

import pytest

from rnnkit import Sequential, saving
from rnnkit.layers import Dense, SimpleRNN
from rnnkit.saving import load_model

T, D = 5, 3


def _model():
    return Sequential([SimpleRNN(4, input_shape=(T, D)), Dense(1)])


# ------------------------------------------------------------------------------- saving


def test_overwrite_keeps_the_permission_bits(tmp_path):
    path = tmp_path / "model.rnnkit"
    path.write_bytes(b"secret")
    path.chmod(0o600)
    _model().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_model(path).count_params() == 37
    umask = os.umask(0o022)
    try:
        _model().save(tmp_path / "new.rnnkit")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.rnnkit").stat().st_mode) == 0o644


def test_save_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1.rnnkit"
    target.write_bytes(b"old")
    link = tmp_path / "latest.rnnkit"
    link.symlink_to(target)
    _model().save(link)
    assert link.is_symlink() and link.resolve() == target
    assert load_model(target).count_params() == 37
    assert sorted(os.listdir(tmp_path)) == ["latest.rnnkit", "models"]  # no temporary beside it
    dangling = tmp_path / "next.rnnkit"
    dangling.symlink_to(tmp_path / "models" / "v2.rnnkit")
    _model().save(dangling)
    assert dangling.is_symlink() and load_model(dangling).count_params() == 37


def test_next_save_removes_only_abandoned_temporaries(tmp_path):
    path = tmp_path / "model.rnnkit"
    abandoned = tmp_path / ".model.rnnkit.0123abcd.tmp"  # as a killed save leaves it
    young = tmp_path / ".model.rnnkit.00000000.tmp"  # a save may be starting right now
    others = [
        ".model.rnnkit.0123ABCD.tmp",
        ".model.rnnkit.0123456789.tmp",
        ".other.rnnkit.0123abcd.tmp",
        "model.rnnkit.0123abcd.tmp",
    ]
    for name in [abandoned.name, young.name, *others]:
        (tmp_path / name).write_bytes(b"half a model")
    old = time.time() - 60
    for name in [abandoned.name, *others]:
        os.utime(tmp_path / name, (old, old))
    _model().save(path)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, young.name, *others])


def test_a_temporary_being_written_by_another_save_is_kept(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    live = tmp_path / ".model.rnnkit.89abcdef.tmp"
    live.write_bytes(b"being written")
    old = time.time() - 3600  # a slow save: its last write an hour ago
    os.utime(live, (old, old))
    with open(live, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as the other save's writer holds it
        _model().save(tmp_path / "model.rnnkit")
    assert live.exists()


def test_keyboard_interrupt_during_save_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.rnnkit"
    _model().save(path)
    before = path.read_bytes()

    def interrupt(model):
        raise KeyboardInterrupt

    monkeypatch.setattr(saving, "_weight_tensors", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _model().save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.rnnkit"]


def test_unwritable_folder_names_the_target_and_folder_not_the_temporary(tmp_path, monkeypatch):
    # Tests run as root, whom chmod does not stop: the refusal is simulated where it happens.
    real_open = os.open

    def refuse_temporaries(path, flags, *args, **kwargs):
        if os.fspath(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_temporaries)
    with pytest.raises(PermissionError) as caught:
        _model().save(tmp_path / "model.rnnkit")
    message = str(caught.value)
    assert ".tmp" not in message
    assert f"Cannot save '{tmp_path / 'model.rnnkit'}'" in message
    assert f"folder '{tmp_path}' (Permission denied). Save it into a folder you can" in message
