"""Train and predict every workload with rnnkit, hand-written PyTorch and Keras 3, side by side.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--only NAME[,NAME]]
                             [--peers PEER[,PEER]] [--out benchmarks/RESULTS.md] [--json RAW.json]

Writes a markdown table (machine, versions, date; samples/s per peer, ratios, the FLOP
bound from a measured sgemm rate; predict latency) to --out and prints it. rnnkit and
torch run in this process; Keras runs in one subprocess per backend (torch, jax,
tensorflow), with this interpreter or, when it lacks the backend, .venv-bench/bin/python
(see benchmarks/README.md). With `--device cuda` every peer runs on the GPU, in float32
without TF32, and the table goes to benchmarks/RESULTS-cuda.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import peers
import torch
from timing import median, time_interleaved
from workloads import LATENCIES, WORKLOADS, Latency, Workload, by_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BACKENDS = ("torch", "jax", "tensorflow")
PEERS = ("rnnkit", "torch", *(f"keras-{b}" for b in BACKENDS))
START = time.perf_counter()
TRAINERS = {"rnnkit": peers.RnnkitTrainer, "torch": peers.TorchTrainer}
SGEMM_SIZE = {"cpu": 1024, "cuda": 4096}  # a GPU needs more work per call to reach its rate


@dataclasses.dataclass
class Run:
    """What one invocation measured.

    results[peer]: `{"train": {workload: [epoch seconds, warm-up first]}, "latency":
    {row: {"predict" | "call": [call seconds]}}, "status": "ok" | "not run" | ...}`.
    """

    args: argparse.Namespace
    train: list[Workload]
    latency: list[Latency]
    results: dict = dataclasses.field(default_factory=dict)
    sgemm_samples: list[float] = dataclasses.field(default_factory=list)  # FLOP/s
    gemm_floor: dict = dataclasses.field(default_factory=dict)  # workload -> samples/s
    versions: dict = dataclasses.field(default_factory=dict)
    kernel_paths: dict = dataclasses.field(default_factory=dict)
    builds: dict = dataclasses.field(default_factory=dict)  # workload -> {build: [epoch s]}
    keras_devices: dict = dataclasses.field(default_factory=dict)  # peer -> "cpu" | "cuda"
    load_at_start: str = ""

    def measure_sgemm(self) -> None:
        device = self.args.device
        rate = peers.sgemm_rate(SGEMM_SIZE[device], 3 if self.args.quick else 5, device)
        self.sgemm_samples.append(rate)

    def measure_gemm_floor(self, w: Workload, cache: dict) -> None:
        """Samples/s if the workload's matrix products (`w.train_products()`) were all the
        work, each at the speed measured for its own shape on this machine."""
        seconds = 0.0
        for count, *shape in w.train_products():
            if tuple(shape) not in cache:
                cache[tuple(shape)] = peers.gemm_seconds(
                    *shape, repeats=3 if self.args.quick else 5, device=self.args.device
                )
            seconds += count * cache[tuple(shape)]
        self.gemm_floor[w.name] = w.batch / seconds

    @property
    def sgemm(self) -> float:
        """The best rate seen: the least disturbed measurement is the closest to the peak."""
        return max(self.sgemm_samples)


def main(argv=None) -> int:
    args = parse_args(argv)
    run = Run(
        args,
        train=[w for w in WORKLOADS if args.only is None or w.name in args.only],
        latency=[lat for lat in LATENCIES if args.only is None or lat.name in args.only],
        results={peer: {"train": {}, "latency": {}, "status": "ok"} for peer in PEERS},
        load_at_start=load_average(),
    )
    if args.device == "cuda":  # full float32, as rnnkit runs cuDNN (torch's default: TF32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    log(f"{'quick' if args.quick else 'full'} run on {args.device}")
    run_in_process(run)
    for backend in BACKENDS:
        run_keras_backend(run, backend)
    run.measure_sgemm()

    text = render(run)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        keys = ("sgemm_samples", "gemm_floor", "versions", "kernel_paths", "keras_devices")
        raw = {k: getattr(run, k) for k in (*keys, "results")}
        Path(args.json).write_text(json.dumps(raw, indent=1))
    print(text, end="")
    log(f"wrote {args.out}")
    return 0


def parse_args(argv):
    names = [x.name for x in [*WORKLOADS, *LATENCIES]]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one timed epoch")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where every peer runs"
    )
    parser.add_argument(
        "--only", type=lambda s: s.split(","), help="comma-separated: " + ", ".join(names)
    )
    parser.add_argument(
        "--peers",
        type=lambda s: s.split(","),
        default=list(PEERS),
        help="comma-separated subset of " + ", ".join(PEERS) + " (default: all)",
    )
    parser.add_argument("--steps", type=int, help="batches per epoch, for every workload")
    parser.add_argument("--calls", type=int, help="timed predict calls, for every latency row")
    parser.add_argument(
        "--out", help="default: benchmarks/RESULTS.md, or RESULTS-cuda.md with --device cuda"
    )
    parser.add_argument("--json", help="also write the raw seconds of every epoch and call here")
    parser.add_argument(
        "--keras-python", help="the interpreter for the Keras peers (with keras and backends)"
    )
    parser.add_argument(
        "--keras-timeout", type=float, help="seconds per Keras backend (default 150, full 400)"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"--device cuda: torch {torch.__version__} sees no CUDA GPU "
            "(torch.cuda.is_available() is False)"
        )
    if args.out is None:
        args.out = str(HERE / ("RESULTS-cuda.md" if args.device == "cuda" else "RESULTS.md"))
    for name in args.only or []:
        if name not in names:
            parser.error(f"--only: no workload {name!r}; known: {', '.join(names)}")
    for peer in args.peers:
        if peer not in PEERS:
            parser.error(f"--peers: no peer {peer!r}; known: {', '.join(PEERS)}")
    if args.keras_timeout is None:
        args.keras_timeout = 150.0 if args.quick else 400.0
    return args


def plan(w: Workload, args) -> tuple[int, int]:
    """(batches per epoch, epochs): one warm-up epoch, then the timed ones."""
    steps, epochs = (w.quick_steps, 2) if args.quick else (w.steps, 1 + w.repeats)
    return args.steps or steps, epochs


def calls_for(lat: Latency, args) -> int:
    return args.calls or (lat.quick_calls if args.quick else lat.calls)


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - START:6.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- rnnkit and torch
def run_in_process(run: Run) -> None:
    args, results = run.args, run.results
    here = [p for p in ("rnnkit", "torch") if p in args.peers]
    gemm_times: dict = {}
    for w in run.train if here else []:
        run.measure_sgemm()
        run.measure_gemm_floor(w, gemm_times)
        steps, epochs = plan(w, args)
        log(f"{w.name}: {' and '.join(here)}, {steps} steps x {epochs} epochs, alternating")
        trainers = {p: TRAINERS[p](w, steps, args.device) for p in here}
        for epoch in range(epochs):
            for peer in here if epoch % 2 == 0 else here[::-1]:
                results[peer]["train"].setdefault(w.name, []).append(trainers[peer].epoch())
        if "rnnkit" in trainers:
            run.kernel_paths[w.name] = peers.kernel_paths(trainers["rnnkit"].model)
    makers = {"rnnkit": peers.rnnkit_latency_calls, "torch": peers.torch_latency_calls}
    for lat in run.latency if here else []:
        w = dataclasses.replace(by_name(lat.workload), timesteps=lat.timesteps)
        calls = calls_for(lat, args)
        log(f"{lat.name}: {' and '.join(here)}, {calls} calls each, taking turns")
        fns = {
            (peer, kind): fn for peer in here for kind, fn in makers[peer](w, args.device).items()
        }
        for (peer, kind), seconds in time_interleaved(fns, calls).items():
            results[peer]["latency"].setdefault(lat.name, {})[kind] = seconds
    if "rnnkit" in here and args.device == "cpu":
        run_builds(run)
    for peer in ("rnnkit", "torch"):
        if peer not in args.peers:
            results[peer]["status"] = "not run"


BUILD_WORKLOADS = ("gru",)  # the compiled builds' comparison trains these (when run)


def run_builds(run: Run) -> None:
    """Train each build of the compiled loops that this CPU runs (AVX-512, AVX2, baseline:
    what CPUs without the wider vectors get) on BUILD_WORKLOADS, taking turns epoch by
    epoch, each with its own model."""
    from rnnkit.kernels import compiled

    builds = {}
    for name in compiled._variants():
        spec = importlib.util.find_spec(f"rnnkit.kernels.{name}")
        if spec is not None and spec.origin is not None:
            builds[name] = compiled.open_library(spec.origin)
    loaded = compiled.LIBRARY, compiled.BUILD
    for w in run.train:
        if w.name not in BUILD_WORKLOADS or len(builds) < 2:
            continue
        steps, epochs = plan(w, run.args)
        log(f"{w.name}: rnnkit with each compiled build ({', '.join(builds)}), alternating")
        trainers = {name: peers.RnnkitTrainer(w, steps) for name in builds}
        try:
            for epoch in range(epochs):
                for name in builds if epoch % 2 == 0 else list(builds)[::-1]:
                    compiled.LIBRARY, compiled.BUILD = builds[name], name
                    seconds = trainers[name].epoch()
                    run.builds.setdefault(w.name, {}).setdefault(name, []).append(seconds)
        finally:
            compiled.LIBRARY, compiled.BUILD = loaded


# ----------------------------------------------------------------------------- Keras
def run_keras_backend(run: Run, backend: str) -> None:
    peer, args = f"keras-{backend}", run.args
    if peer not in args.peers:
        run.results[peer]["status"] = "not run"
        return
    python = keras_python(backend, args.keras_python)
    if python is None:
        run.results[peer]["status"] = "n/a (not installed)"
        return
    log(f"{peer}: subprocess {python}")
    job = {
        "backend": backend,
        "device": args.device,
        "train": [[w.name, *plan(w, args)] for w in run.train],
        "latency": [
            [lat.name, lat.workload, lat.timesteps, calls_for(lat, args)] for lat in run.latency
        ],
    }
    out = run_keras(job, python, args.keras_timeout)
    run.results[peer].update(train=out["train"], latency=out["latency"], status=out["status"])
    if "device" in out:
        run.keras_devices[peer] = out["device"]
    for name, error in out.get("errors", {}).items():
        log(f"{peer} {name} failed:\n{error}")
    where = "" if python == sys.executable else f" (in {os.path.relpath(python, ROOT)})"
    for lib, version in out.get("versions", {}).items():
        run.versions.setdefault(lib, version + where)


def keras_python(backend: str, given: str | None) -> str | None:
    """The first interpreter with keras and the backend: --keras-python, else this one, else
    .venv-bench's."""
    candidates = [given] if given else [sys.executable, str(ROOT / ".venv-bench/bin/python")]
    probe = "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))"
    for python in candidates:
        if Path(python).exists():
            done = subprocess.run([python, "-c", probe, "keras", backend], capture_output=True)
            if done.returncode == 0:
                return python
    return None


def run_keras(job: dict, python: str, timeout: float) -> dict:
    """Run keras_peer.py for one backend; what it measured before a failure still counts."""
    with tempfile.TemporaryDirectory() as tmp:
        job_path, result_path = Path(tmp, "job.json"), Path(tmp, "result.json")
        job_path.write_text(json.dumps(job))
        command = [python, str(HERE / "keras_peer.py"), str(job_path), str(result_path)]
        env = {**os.environ, "KERAS_BACKEND": job["backend"], "TF_CPP_MIN_LOG_LEVEL": "2"}
        status = "ok"
        try:
            # Its progress and errors go to our stderr; our stdout stays the table.
            done = subprocess.run(command, cwd=HERE, env=env, timeout=timeout, stdout=sys.stderr)
            if done.returncode != 0:
                status = "failed"
                log(f"keras-{job['backend']} exited with status {done.returncode}")
        except subprocess.TimeoutExpired:
            status = "timed out"
            log(f"keras-{job['backend']} ran past {timeout:.0f} s; keeping what it measured")
        out = json.loads(result_path.read_text()) if result_path.exists() else {}
    return {"train": {}, "latency": {}, **out, "status": status}


# ---------------------------------------------------------------------------- table
TRAIN_NOTE = (
    "Each peer trains the same model on the same arrays with the same batch size, Adam "
    "(lr=1e-3) and loss, shuffle off. An epoch is a fixed number of batches; the first epoch "
    "is a warm-up (and compilation, for Keras), the figure is the fastest of the timed epochs: "
    "the least disturbed by other processes, as the sgemm rate is the best measured (`--json` "
    "keeps every epoch's time). "
    "rnnkit and torch take turns epoch by epoch; each Keras backend runs in a subprocess after. "
    "*torch* is a hand-written loop: `nn.RNN/LSTM/GRU(batch_first=True)` + `nn.Linear` "
    "(+ `nn.Embedding`) over pre-made batches, `opt.zero_grad(); loss.backward(); opt.step()`. "
    "rnnkit's first fit sets malloc to keep freed blocks (see the README), for the torch loop "
    "in the same process too. "
    "Ratios above 1 mean rnnkit is faster. *FLOP bound*: the samples/s if every matrix product "
    "ran at the measured sgemm rate (training = 3× the forward FLOPs); *× bound*: how many "
    "times longer than that rnnkit takes."
)
BUILDS_NOTE = (
    "`pip install` builds rnnkit's compiled time loops for three x86-64 levels and rnnkit "
    "loads the best one the CPU runs (`rnnkit.kernels.compiled`; here `{loaded}`): a CPU "
    "without AVX-512 runs the AVX2 build, and one without AVX2 (or not x86) the baseline. "
    "Each build this CPU runs trains the same workload here, the builds taking turns epoch by "
    "epoch (the fastest timed epoch), so that a slow build shows. *torch*: the "
    "hand-written loop's figure from the first table."
)
FLOOR_NOTE = (
    "*GEMM floor*: the samples/s if the same matrix products were all the work, each taking "
    "the time `torch.mm` measured for its own shape on this machine (the per-step products of "
    "a recurrence are small, e.g. 32×128 by 128×384, and run well below the sgemm rate); no "
    "implementation that calls torch's GEMM once per product and step gets past it. "
    "rnnkit's compiled time loops run the per-step products themselves, with `U` packed once "
    "per call, and can; so can cuDNN (rnnkit and torch on a GPU), which runs the whole "
    "recurrence without torch's per-call overhead. *× floor*: how many times longer than that "
    "rnnkit takes."
)
LATENCY_NOTE = (
    "`predict` is `model.predict(x)`; `model(x)` calls the model directly (rnnkit and torch "
    "under `torch.no_grad()`). rnnkit's and torch's calls take turns, call by call; each Keras "
    "backend runs after, in its subprocess. Calls that are slow stop after about 5 s, with the "
    "count shown. "
    "The last column is rnnkit's `predict` time over the torch module's."
)


def render(run: Run) -> str:
    args = run.args
    lines = [
        "# rnnkit benchmarks",
        "",
        f"Written by `python benchmarks/run.py{' --quick' if args.quick else ''}"
        f"{' --device cuda' if args.device == 'cuda' else ''}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        *machine_lines(run),
        "",
        "## Training throughput (samples/s, higher is better)",
        "",
        TRAIN_NOTE,
        "",
        "| workload | steps × epochs | " + " | ".join(PEERS) + " | rnnkit/torch "
        "| rnnkit/keras-torch | FLOP bound | rnnkit × bound |",
        "| --- | --- |" + " ---: |" * (len(PEERS) + 4),
    ]
    bounds = {w.name: run.sgemm / w.train_flops_per_sample() for w in run.train}
    for w in run.train:
        speed = {peer: samples_per_second(run, peer, w) for peer in PEERS}
        cells = [fmt(speed[p]) if speed[p] else missing(run, p) for p in PEERS]
        cells += [
            ratio(speed["rnnkit"], speed["torch"]),
            ratio(speed["rnnkit"], speed["keras-torch"]),
            fmt(bounds[w.name]),
            ratio(bounds[w.name], speed["rnnkit"]),
        ]
        lines.append(f"| {w.title} | {' × '.join(map(str, plan(w, args)))} | {' | '.join(cells)} |")

    lines += [
        "",
        "## Training time as a multiple of the FLOP bound (lower is better)",
        "",
        FLOOR_NOTE,
        "",
        "| workload | MFLOP per sample | " + " | ".join(PEERS) + " | GEMM floor | rnnkit × floor |",
        "| --- | ---: |" + " ---: |" * (len(PEERS) + 2),
    ]
    for w in run.train:
        cells = []
        for peer in PEERS:
            speed = samples_per_second(run, peer, w)
            cells.append(ratio(bounds[w.name], speed) if speed else missing(run, peer))
        floor = run.gemm_floor.get(w.name)
        cells += [
            fmt(floor) if floor else "—",
            ratio(floor, samples_per_second(run, "rnnkit", w)) if floor else "—",
        ]
        flops = w.train_flops_per_sample() / 1e6
        lines.append(f"| {w.title} | {flops:,.1f} | {' | '.join(cells)} |")

    if run.latency:
        lines += latency_table(run)
    if run.builds:
        lines += builds_table(run)
    if run.kernel_paths:
        lines += [
            "",
            "## rnnkit's recurrent kernels (`layer.kernel_path`) and fit's step "
            "(`model.step_path`), training",
            "",
        ]
        lines += [f"- {name}: " + "; ".join(paths) for name, paths in run.kernel_paths.items()]
    return "\n".join(lines) + "\n"


def builds_table(run: Run) -> list[str]:
    names = list(next(iter(run.builds.values())))
    lines = [
        "",
        "## rnnkit's compiled loops, each build (training samples/s, higher is better)",
        "",
        BUILDS_NOTE.format(loaded=names[0]),
        "",
        "| workload | " + " | ".join(f"`{n}`" for n in names) + " | torch |",
        "| --- |" + " ---: |" * (len(names) + 1),
    ]
    for w in run.train:
        if w.name not in run.builds:
            continue
        timed = {n: seconds[1:] for n, seconds in run.builds[w.name].items()}
        speeds = [w.batch * plan(w, run.args)[0] / min(timed[n]) for n in names]
        torch_speed = samples_per_second(run, "torch", w)
        cells = [
            f"{fmt(v)} ({ratio(v, torch_speed)} torch)" if torch_speed else fmt(v) for v in speeds
        ]
        cells.append(fmt(torch_speed) if torch_speed else missing(run, "torch"))
        lines.append(f"| {w.title} | {' | '.join(cells)} |")
    return lines


def latency_table(run: Run) -> list[str]:
    columns = [("rnnkit", "predict"), ("rnnkit", "call"), ("torch", "call")]
    columns += [(f"keras-{b}", kind) for b in BACKENDS for kind in ("predict", "call")]
    title = {"predict": "predict", "call": "model(x)"}
    lines = [
        "",
        "## Predict latency, one sequence (ms, median of the timed calls; lower is better)",
        "",
        LATENCY_NOTE,
        "",
        "| model | calls | "
        + " | ".join(f"{peer} {title[kind]}" for peer, kind in columns)
        + " | rnnkit predict ÷ torch |",
        "| --- | ---: |" + " ---: |" * (len(columns) + 1),
    ]
    for lat in run.latency:
        calls = calls_for(lat, run.args)
        ms, cells = {}, []
        for peer, kind in columns:
            seconds = run.results[peer]["latency"].get(lat.name, {}).get(kind)
            if not seconds:
                ms[peer, kind] = None
                cells.append(missing(run, peer))
                continue
            ms[peer, kind] = 1e3 * median(seconds)
            stopped = f" ({len(seconds)} calls)" if len(seconds) < calls else ""
            cells.append(f"{ms[peer, kind]:.3g}{stopped}")
        a, b = ms["rnnkit", "predict"], ms["torch", "call"]
        ratio_cell = f"{a / b:.1f}×" if a and b else "—"
        lines.append(f"| {lat.title} | {calls} | {' | '.join(cells)} | {ratio_cell} |")
    return lines


def samples_per_second(run: Run, peer: str, w: Workload) -> float | None:
    seconds = run.results[peer]["train"].get(w.name)
    if not seconds:
        return None
    timed = seconds[1:] or seconds  # the first epoch is the warm-up
    return w.batch * plan(w, run.args)[0] / min(timed)  # the least disturbed, as for sgemm


def missing(run: Run, peer: str) -> str:
    """What a cell without a number says: not run, n/a (not installed), timed out, failed."""
    status = run.results[peer]["status"]
    return "failed" if status == "ok" else status


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def machine_lines(run: Run) -> list[str]:
    import numpy

    import rnnkit

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "numpy": numpy.__version__,
    }
    for lib in ("keras", "jax", "tensorflow"):
        found[lib] = run.versions.get(lib) or installed(lib) or "not installed"
    size, cuda = SGEMM_SIZE[run.args.device], run.args.device == "cuda"
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"{platform.system()} {platform.release()}",
        *device_lines(run),
        f"- Load average (1 min): {run.load_at_start} at the start, {load_average()} at the end "
        "(other processes on the machine skew the numbers)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()),
        f"- sgemm: {run.sgemm / 1e9:,.1f} GFLOP/s {'float32, TF32 off' if cuda else 'float32'}, "
        f"the best of torch.matmul {size}×{size} on the {'GPU' if cuda else 'CPU'} measured "
        f"before each workload and at the end (the worst: {min(run.sgemm_samples) / 1e9:,.1f}; "
        "far apart means the machine was busy)",
    ]


def device_lines(run: Run) -> list[str]:
    """Where the peers ran; on cuda the GPU, CUDA and cuDNN, and the float32 settings."""
    keras = "".join(f"; {peer} on {where}" for peer, where in run.keras_devices.items())
    if run.args.device == "cpu":
        return [f"- Device: cpu{keras}"]
    return [
        f"- Device: cuda, {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}{keras}",
        "- GPU numerics: float32, TF32 off, for every peer. rnnkit runs cuDNN in full float32 "
        "by itself; the torch peer does only with `torch.backends.cudnn.allow_tf32 = False` "
        "(torch's default is True), which this run sets, here and in Keras on torch; "
        "`torch.backends.cuda.matmul.allow_tf32` stays False; Keras on JAX gets "
        "`jax_default_matmul_precision=highest`. Every time is read after "
        "`torch.cuda.synchronize()` (JAX: `block_until_ready`).",
    ]


def installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


if __name__ == "__main__":
    sys.exit(main())
