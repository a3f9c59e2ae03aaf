"""Where a small model's training step spends its time: fit's eager step against its direct step.

    .venv/bin/python benchmarks/step_profile.py                  # ~1 minute on 2 idle cores
    .venv/bin/python benchmarks/step_profile.py --only forecast_gru --threads 1
    .venv/bin/python benchmarks/step_profile.py --torch-profile   # also torch.profiler's top ops
    .venv/bin/python benchmarks/step_profile.py --ensemble 5      # and 5 members trained as one

For the small workloads of `workloads.py` it trains `model.fit` epochs with each step
(`compile(jit_compile=False)` keeps the eager one) and splits the time of a batch among the
parts of the step, each timed by a wrapper around the function that does it:

- *compiled loops*: the C++ time loops of the recurrences (`rnnkit.kernels.compiled`), the
  arithmetic of the recurrence itself, forward and backward;
- *forward*: the layers' forward passes, less the loops (eager: recording the graph too);
- *loss*: the loss (direct step: with its gradient);
- *backward*: the backward passes, less the loops (eager: autograd's engine);
- *optimizer*: the update, Adam here;
- *tracking*: the running loss and metrics;
- *fit loop*: the rest of an epoch over its batches: slicing them, callbacks, the loop.

The wrappers cost a little themselves, so the parts add up to slightly more than the
untimed epoch in the last column, measured with no wrapper. Numbers are per batch, µs,
the fastest epoch of several.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402
from peers import rnnkit_model  # noqa: E402

from rnnkit import losses  # noqa: E402
from rnnkit.kernels import compiled  # noqa: E402
from rnnkit.layers._base import Layer  # noqa: E402
from rnnkit.optimizers import Optimizer  # noqa: E402
from rnnkit.training import _fit  # noqa: E402

PARTS = ("compiled loops", "forward", "loss", "backward", "optimizer", "tracking", "fit loop")
SMALL = ("simple_rnn", "forecast_gru")


class Clock:
    """Seconds spent inside each part; a part inside another is taken out of it."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.stack = []

    @contextlib.contextmanager
    def part(self, name):
        start = time.perf_counter()
        self.stack.append(0.0)  # time of the parts nested in this one
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            nested = self.stack.pop()
            self.seconds[name] += spent - nested
            if self.stack:
                self.stack[-1] += spent

    def wrap(self, owner, attribute, name, returns_backward=False):
        """Time `owner.attribute` as part `name` (and, for a layer's direct call, the
        backward pass it returns as part "backward")."""
        original = getattr(owner, attribute)
        clock = self

        def timed(*args, **kwargs):
            with clock.part(name):
                out = original(*args, **kwargs)
            if returns_backward:
                value, backward = out

                def timed_backward(*a, **k):
                    with clock.part("backward"):
                        return backward(*a, **k)

                return value, timed_backward
            return out

        setattr(owner, attribute, timed)
        return original


@contextlib.contextmanager
def instrumented(clock):
    """The step's functions wrapped by `clock` while inside."""
    patches = [
        (compiled, "_loop", "compiled loops", False),
        (Layer, "__call__", "forward", False),
        (Layer, "direct_call", "forward", True),
        (losses.Loss, "__call__", "loss", False),
        (losses, "value_and_gradient", "loss", False),
        (torch.Tensor, "backward", "backward", False),
        (Optimizer, "step", "optimizer", False),
        (_fit._Step, "track", "tracking", False),
    ]
    originals = [
        (owner, attr, clock.wrap(owner, attr, name, rb)) for owner, attr, name, rb in patches
    ]
    # each layer class's own direct_call, which the base class's wrapper does not reach
    for cls in _subclasses(Layer):
        if "direct_call" in vars(cls):
            originals.append((cls, "direct_call", clock.wrap(cls, "direct_call", "forward", True)))
    try:
        yield
    finally:
        for owner, attr, original in reversed(originals):
            setattr(owner, attr, original)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def breakdown(name: str, jit, steps: int, repeats: int) -> dict:
    w = workloads.by_name(name)
    x, y = workloads.make_data(w, w.batch * steps)
    model = rnnkit_model(w, "cpu")
    model.compile(optimizer="adam", loss=w.loss, metrics=list(w.metrics), jit_compile=jit)
    kwargs = {"batch_size": w.batch, "epochs": 1, "verbose": 0, "shuffle": False}
    model.fit(x, y, **kwargs)  # warm-up
    best_parts, best_total, plain = None, float("inf"), float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, **kwargs)
        plain = min(plain, time.perf_counter() - start)
        clock = Clock()
        with instrumented(clock), clock.part("fit loop"):
            model.fit(x, y, **kwargs)
        total = sum(clock.seconds.values())
        if total < best_total:
            best_parts, best_total = dict(clock.seconds), total
    per_batch = {part: best_parts.get(part, 0.0) / steps * 1e6 for part in PARTS}
    per_batch["total"] = best_total / steps * 1e6
    per_batch["untimed"] = plain / steps * 1e6
    return {"path": model.step_path, "us": per_batch}


def torch_profile(name: str, jit, steps: int) -> str:
    """torch.profiler's table of one epoch: the ops and autograd nodes that ran."""
    from torch.profiler import profile

    w = workloads.by_name(name)
    x, y = workloads.make_data(w, w.batch * steps)
    model = rnnkit_model(w, "cpu")
    model.compile(optimizer="adam", loss=w.loss, metrics=list(w.metrics), jit_compile=jit)
    kwargs = {"batch_size": w.batch, "epochs": 1, "verbose": 0, "shuffle": False}
    model.fit(x, y, **kwargs)
    with profile() as prof:
        model.fit(x, y, **kwargs)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def ensemble_times(name: str, members: int, steps: int, repeats: int) -> dict:
    """µs per batch for `members` copies of the workload's model: trained as one
    `rnnkit.Ensemble` (stacked), the same ensemble with each member's step in turn, and each
    member's own `fit` one after another; the fastest of `repeats` epochs each."""
    from rnnkit import Ensemble
    from rnnkit.training import _ensemble

    w = workloads.by_name(name)
    x, y = workloads.make_data(w, w.batch * steps)
    kwargs = {"batch_size": w.batch, "epochs": 1, "verbose": 0, "shuffle": False}

    def build():
        return rnnkit_model(w, "cpu")

    def fastest(fit):
        fit()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fit()
            best = min(best, time.perf_counter() - start)
        return best / steps * 1e6

    stacked = Ensemble.from_seeds(build, range(members))
    times = {"stacked": fastest(lambda: stacked.fit(x, y, **kwargs))}
    real = _ensemble.stack_blocker
    _ensemble.stack_blocker = lambda *args: "measured without stacking"
    try:
        turns = Ensemble.from_seeds(build, range(members))
        times["in turn"] = fastest(lambda: turns.fit(x, y, **kwargs))
    finally:
        _ensemble.stack_blocker = real
    alone = [build() for _ in range(members)]
    times["one by one"] = fastest(lambda: [m.fit(x, y, **kwargs) for m in alone])
    times["path"] = stacked.step_path
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated workloads (default: the small ones)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=100, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per step kind")
    parser.add_argument("--torch-profile", action="store_true", help="print torch.profiler's")
    parser.add_argument(
        "--ensemble", type=int, metavar="M", help="also time M members (forecast_gru) trained"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else SMALL
    print(f"torch threads: {torch.get_num_threads()}; µs per batch, the fastest of {args.repeats}")
    print()
    header = ["workload", "step", *PARTS, "sum", "untimed"]
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |")
    for name in names:
        for jit, step in ((False, "eager"), ("auto", "direct")):
            result = breakdown(name, jit, args.steps, args.repeats)
            cells = [f"{result['us'][p]:.0f}" for p in (*PARTS, "total", "untimed")]
            print(f"| {name} | {step} | " + " | ".join(cells) + " |", flush=True)
    if args.ensemble:
        times = ensemble_times("forecast_gru", args.ensemble, args.steps, args.repeats)
        print(f"\n{args.ensemble} members of forecast_gru, µs per batch ({times['path']}):")
        for how in ("stacked", "in turn", "one by one"):
            print(f"- {how}: {times[how]:,.0f}")
    if args.torch_profile:
        for name in names:
            for jit, step in ((False, "eager"), ("auto", "direct")):
                print(f"\n{name}, {step} step:\n{torch_profile(name, jit, args.steps)}")


if __name__ == "__main__":
    main()
