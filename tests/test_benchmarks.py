"""benchmarks/run.py runs end to end and writes its table. Speed is never asserted here."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/ on sys.path, as when `python benchmarks/run.py` runs."""
    monkeypatch.syspath_prepend(str(BENCH))
    import run
    import workloads

    return run, workloads


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_quick_run_writes_the_table(bench, tmp_path, capsys):
    run, _ = bench
    out = tmp_path / "RESULTS.md"
    only = "simple_rnn,latency_simple_rnn"
    argv = ["--quick", "--only", only, "--peers", "rnnkit,torch", "--steps", "2", "--calls", "3"]
    assert run.main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == text  # printed as well as written
    lines = text.splitlines()
    assert "`python benchmarks/run.py --quick` on " in lines[2]  # no --device for cpu
    for start in ("- Machine: ", "- Device: cpu", "- Versions: python", "- sgemm: "):
        assert any(line.startswith(start) for line in lines), start

    header = next(line for line in lines if line.startswith("| workload | steps"))
    assert _cells(header) == [
        "workload",
        "steps × epochs",
        "rnnkit",
        "torch",
        "keras-torch",
        "keras-jax",
        "keras-tensorflow",
        "rnnkit/torch",
        "rnnkit/keras-torch",
        "FLOP bound",
        "rnnkit × bound",
    ]
    row = _cells(
        next(line for line in lines if line.startswith("| SimpleRNN(32), T=20, D=3, B=64"))
    )
    assert len(row) == len(_cells(header))
    assert row[1] == "2 × 2"
    for measured in (row[2], row[3], row[9]):  # rnnkit, torch, the FLOP bound: samples/s
        assert float(measured.replace(",", "")) > 0
    assert row[4:7] == ["not run"] * 3  # the Keras peers were left out
    assert row[7].endswith("×") and row[8] == "—"

    floor_header = next(line for line in lines if line.startswith("| workload | MFLOP"))
    assert _cells(floor_header)[-2:] == ["GEMM floor", "rnnkit × floor"]
    rows = [line for line in lines if line.startswith("| SimpleRNN(32), T=20, D=3, B=64")]
    floor_row = _cells(rows[1])  # the second table's row
    assert float(floor_row[-2].replace(",", "")) > 0 and floor_row[-1].endswith("×")

    latency = _cells(
        next(line for line in lines if line.startswith("| SimpleRNN(32), T=20, D=3 |"))
    )
    assert latency[1] == "3"
    assert all(float(ms) > 0 for ms in latency[2:5])  # rnnkit predict, rnnkit model(x), torch


def test_each_compiled_build_this_cpu_runs_trains_the_gru_workload(bench, tmp_path):
    """A build slower than it should be (the AVX2 one once ran 20-30x slower than AVX-512)
    shows in its own table: every build this CPU runs, beside torch."""
    from rnnkit.kernels import compiled

    run, _ = bench
    built = [
        name
        for name in compiled._variants()
        if (spec := importlib.util.find_spec(f"rnnkit.kernels.{name}")) and spec.origin
    ]
    if len(built) < 2:
        pytest.skip(f"one compiled build or none here ({built}): nothing to compare")
    out = tmp_path / "RESULTS.md"
    argv = ["--quick", "--only", "gru", "--peers", "rnnkit,torch", "--steps", "1"]
    assert run.main([*argv, "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert compiled.LIBRARY is not None and built[0] == compiled.BUILD  # restored afterwards
    start = lines.index(
        "## rnnkit's compiled loops, each build (training samples/s, higher is better)"
    )
    header = next(line for line in lines[start:] if line.startswith("| workload"))
    assert _cells(header) == ["workload", *(f"`{name}`" for name in built), "torch"]
    row = _cells(next(line for line in lines[start:] if line.startswith("| GRU(128)")))
    for cell in row[1:-1]:  # "2,325 (2.50× torch)"
        speed, versus = cell.split(" (")
        assert float(speed.replace(",", "")) > 0 and versus.endswith("× torch)")
    assert float(row[-1].replace(",", "")) > 0


def test_device_cuda_needs_a_gpu(bench, monkeypatch, capsys):
    run, _ = bench
    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        run.parse_args(["--device", "cuda"])
    assert "--device cuda: torch" in capsys.readouterr().err
    assert run.parse_args([]).device == "cpu"

    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: True)
    assert run.parse_args(["--device", "cuda"]).device == "cuda"


def test_the_default_out_depends_on_the_device(bench, monkeypatch):
    run, _ = bench
    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: True)
    assert run.parse_args([]).out == str(run.HERE / "RESULTS.md")
    assert run.parse_args(["--device", "cuda"]).out == str(run.HERE / "RESULTS-cuda.md")
    assert run.parse_args(["--device", "cuda", "--out", "x.md"]).out == "x.md"


def test_the_cuda_header_names_the_gpu_and_the_float32_settings(bench, monkeypatch):
    """What `--device cuda` writes above the tables, with torch's GPU queries faked."""
    run, _ = bench
    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(run.torch.cuda, "get_device_name", lambda: "Some GPU")
    monkeypatch.setattr(run.torch.version, "cuda", "12.4")
    monkeypatch.setattr(run.torch.backends.cudnn, "version", lambda: 90100)
    args = run.parse_args(["--device", "cuda", "--only", "simple_rnn", "--quick"])
    bench_run = run.Run(args, train=[], latency=[], sgemm_samples=[1e12])
    bench_run.results = {peer: {"train": {}, "latency": {}, "status": "ok"} for peer in run.PEERS}
    bench_run.keras_devices["keras-torch"] = "cuda"
    lines = run.render(bench_run).splitlines()
    assert "`python benchmarks/run.py --quick --device cuda` on " in lines[2]
    device = next(line for line in lines if line.startswith("- Device: "))
    assert device == "- Device: cuda, Some GPU, CUDA 12.4, cuDNN 90100; keras-torch on cuda"
    assert any("TF32 off" in line and "allow_tf32 = False" in line for line in lines)
    sgemm = next(line for line in lines if line.startswith("- sgemm: "))
    assert "1,000.0 GFLOP/s float32, TF32 off" in sgemm and "on the GPU" in sgemm


def test_flop_count_of_a_simple_rnn(bench):
    _, workloads = bench
    w = workloads.by_name("simple_rnn")  # SimpleRNN(32) on D=3, T=20, then Dense(1)
    forward = 2 * 20 * (3 + 32) * 32 + 2 * 32 * 1
    assert w.train_flops_per_sample() == 3 * forward


def test_the_products_behind_the_gemm_floor_add_up_to_the_flop_count(bench):
    """`train_products` lists the same matrix products the FLOP count adds up (3x forward),
    shape by shape: the floor and the bound describe the same work."""
    _, workloads = bench
    for w in workloads.WORKLOADS:
        flops = sum(2 * count * m * k * n for count, m, k, n in w.train_products())
        assert flops == w.batch * w.train_flops_per_sample(), w.name
    gru = workloads.by_name("gru")  # GRU(128) on D=128, T=100, B=32
    assert (100, 32, 128, 384) in gru.train_products()  # h_{t-1} U at every step
