"""rnnkit.saving against awkward destinations and hostile files (issue 15, items 9 and 10).

Saving: permission bits, symlinks, temporaries that killed saves leave, unwritable folders.
Loading: zip bombs, a config that asks for more weights than its file holds, JSON nested
deep or with a 5,000-digit number, a dtype torch lacks, optimizer state of the wrong shape,
paths that are not regular files. Each is a ValueError naming the file, raised within
bounded memory and time. tests/test_saving.py covers the ordinary corrupt files.
"""

import functools
import json
import os
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import safetensors.torch
import torch

import rnnkit
from rnnkit import Sequential, saving
from rnnkit.layers import Dense, SimpleRNN
from rnnkit.saving import load_checkpoint, load_model, save_checkpoint

T, D = 5, 3


def _model(compiled=False):
    model = Sequential([SimpleRNN(4, input_shape=(T, D)), Dense(1)])
    if compiled:
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(0).normal(size=(8, T, D)).astype("float32")
        model.fit(x, x.sum(axis=(1, 2))[:, None], epochs=1, verbose=0)
    return model


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, members: dict) -> None:
    """A zip written by hand, so that a member's header may say what a test likes.

    A member is bytes (stored) or `(deflated stream, size, crc)`, its header claiming `size`.
    """
    body, directory = b"", b""
    for name, member in members.items():
        raw, size, crc = member if isinstance(member, tuple) else (member, len(member), None)
        method, crc = (8, crc) if isinstance(member, tuple) else (0, zlib.crc32(member))
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(raw), size)
        encoded = name.encode()
        directory += (
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, len(body))
            + encoded
        )
        body += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + raw
    n = len(members)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(directory), len(body), 0)
    with open(path, "wb") as f:
        f.write(body + directory + end)


@functools.cache
def _gib_of_zeros() -> tuple[bytes, int]:
    """A raw deflate stream of 1 GiB of zeros (about 1 MB), and its CRC, in a fraction of a
    second: 16 MiB compressed once and repeated (a full flush makes each segment stand alone).
    """
    chunk, compressor = bytes(2**24), zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = segment * 63 + compressor.compress(chunk) + compressor.flush()
    crc = functools.reduce(lambda c, _: zlib.crc32(chunk, c), range(64), 0)
    return stream, crc


def _loaders():
    def weights(path):
        _model().load_weights(path)

    def checkpoint(path):
        load_checkpoint(_model(), path)

    return {"load_model": load_model, "load_weights": weights, "load_checkpoint": checkpoint}


def _saved(tmp_path, loader: str):
    """A file each loader reads: a model file, or a checkpoint for load_checkpoint."""
    path = tmp_path / "model.rnnkit"
    if loader == "load_checkpoint":
        save_checkpoint(_model(), path, epoch=1)
    else:
        _model().save(path)
    return path


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


# -------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize(
    "loader, member",
    [
        ("load_model", "config.json"),
        ("load_model", "model.safetensors"),
        ("load_weights", "model.safetensors"),
        ("load_checkpoint", "model.safetensors"),
    ],
)
def test_a_member_claiming_a_gib_is_refused_fast_in_bounded_memory(tmp_path, loader, member):
    path = _saved(tmp_path, loader)
    stream, crc = _gib_of_zeros()
    _write_zip(path, {**_members(path), member: (stream, 2**30, crc)})
    assert os.path.getsize(path) < 2**21
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=rf"'{path}': {member} decompresses to more than"):
            _loaders()[loader](path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 64 * 2**20


def test_a_member_whose_header_understates_its_size_stops_there(tmp_path):
    path = _saved(tmp_path, "load_model")
    stream, crc = _gib_of_zeros()
    _write_zip(path, {**_members(path), "model.safetensors": (stream, 1000, crc)})
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"model.safetensors cannot be read \(Bad CRC"):
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_config_asking_for_more_weights_than_the_file_holds_allocates_nothing(tmp_path):
    # SimpleRNN(60000) would take 14 GB. The load runs in a process whose address space is
    # capped 2 GiB above what it has after import, so that allocating would fail, not OOM.
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/statm and caps RLIMIT_AS")
    path = _saved(tmp_path, "load_model")
    config = json.loads(_members(path)["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 60000
    _write_zip(path, {**_members(path), "config.json": json.dumps(config).encode()})
    assert os.path.getsize(path) < 5000
    script = (
        "import resource, sys, torch\n"
        "from rnnkit import load_model\n"
        "torch.set_num_threads(1)\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 2**30, used + 2 * 2**30))\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "except ValueError as err:\n"
        "    print('ValueError:', err)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"ValueError: '{path}' does not fit model 'sequential'" in done.stdout
    assert "(4, 4) in the file" in done.stdout
    assert "but (60000, 60000) in the model" in done.stdout


def test_config_is_checked_on_the_meta_device_before_any_weight_exists(tmp_path, monkeypatch):
    path = _saved(tmp_path, "load_model")
    config = json.loads(_members(path)["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 6
    _write_zip(path, {**_members(path), "config.json": json.dumps(config).encode()})
    created = []
    add_weight = rnnkit.layers.Layer.add_weight

    def record(self, *args, **kwargs):
        weight = add_weight(self, *args, **kwargs)
        created.append(weight.device.type)
        return weight

    monkeypatch.setattr(rnnkit.layers.Layer, "add_weight", record)
    with pytest.raises(ValueError, match=r"weight 0 is \(3, 4\) in the file .* but \(3, 6\)"):
        load_model(path)
    assert created and set(created) == {"meta"}


def test_an_unbuilt_model_still_loads(tmp_path):
    # The check above compares weights only when there are any, as loading itself does.
    path = tmp_path / "model.rnnkit"
    Sequential([SimpleRNN(4), Dense(1)]).save(path)
    assert not load_model(path).built


@pytest.mark.parametrize("member", ["rnnkit.json", "config.json"])
def test_deeply_nested_json(tmp_path, member):
    path = _saved(tmp_path, "load_model")
    _write_zip(path, {**_members(path), member: b"[" * 100_000 + b"]" * 100_000})
    with pytest.raises(ValueError, match=rf"'{path}': {member} is not valid JSON .*recursion"):
        load_model(path)


def test_object_dtype_in_a_layer_config(tmp_path):
    path = _saved(tmp_path, "load_model")
    config = json.loads(_members(path)["config.json"])
    config["config"]["layers"][1]["config"]["dtype"] = "object"
    _write_zip(path, {**_members(path), "config.json": json.dumps(config).encode()})
    with pytest.raises(ValueError, match=rf"'{path}': config.json gives layer 'simple_rnn' "):
        load_model(path)
    config["config"]["layers"][1]["config"]["dtype"] = "int64"  # a dtype, but no trainable one
    _write_zip(path, {**_members(path), "config.json": json.dumps(config).encode()})
    with pytest.raises(ValueError, match=rf"'{path}': cannot rebuild the model from config.json"):
        load_model(path)


def test_a_5000_digit_format_version(tmp_path):
    path = _saved(tmp_path, "load_model")
    manifest = b'{"format": "rnnkit.model", "format_version": ' + b"1" * 5000 + b"}"
    _write_zip(path, {**_members(path), "rnnkit.json": manifest})
    with pytest.raises(ValueError, match=rf"'{path}': rnnkit.json is not valid JSON .*digits"):
        load_model(path)
    weights = tmp_path / "model.weights.h5"  # safetensors metadata hold the version as a string
    metadata = {"format": "rnnkit.weights", "format_version": "1" * 5000}
    tensors = saving._weight_tensors(_model())
    weights.write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    with pytest.raises(ValueError, match=rf"'{weights}': format_version '1111.*' is not valid"):
        _model().load_weights(weights)


@pytest.mark.parametrize("loader", ["load_model", "load_checkpoint"])
def test_optimizer_state_of_the_wrong_shape(tmp_path, loader):
    path = tmp_path / "model.rnnkit"
    model = _model(compiled=True)
    if loader == "load_model":
        model.save(path)
    else:
        save_checkpoint(model, path, epoch=1)
    state = safetensors.torch.load(_members(path)["optimizer.safetensors"])
    state["0/momentum"] = torch.zeros(3, 9)
    _write_zip(path, {**_members(path), "optimizer.safetensors": safetensors.torch.save(state)})
    with pytest.raises(ValueError, match=rf"'{path}': the optimizer state does not fit .*0/mom"):
        _loaders()[loader](path) if loader == "load_model" else load_checkpoint(model, path)
    state["0/momentum"], state["7/momentum"] = torch.zeros(3, 4), torch.zeros(3, 4)
    _write_zip(path, {**_members(path), "optimizer.safetensors": safetensors.torch.save(state)})
    with pytest.raises(ValueError, match=r"holds state of weight 7, and the model has 5"):
        load_model(path) if loader == "load_model" else load_checkpoint(model, path)


@pytest.mark.parametrize("loader", ["load_model", "load_weights", "load_checkpoint"])
def test_a_path_that_is_not_a_regular_file(tmp_path, loader):
    fifo = tmp_path / "model.rnnkit"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    for path in ["/dev/zero", str(fifo)]:
        with pytest.raises(ValueError, match=rf"'{path}' is not a regular file"):
            _loaders()[loader](path)
