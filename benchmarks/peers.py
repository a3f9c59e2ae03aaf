"""The in-process peers: rnnkit (`model.fit` / `model.predict`) and hand-written PyTorch.

A trainer's `epoch()` trains one epoch and returns its seconds, so that run.py can
alternate the two peers epoch by epoch (a burst of load elsewhere then hits both); a latency
runner returns the seconds of every timed call. The Keras peers live in keras_peer.py (one
subprocess per backend, since Keras picks its backend at import).

Every peer takes the device, "cpu" or "cuda". On cuda, GPU work runs behind the Python code
that queues it, so every timing ends (and begins) with `sync(device)`.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from workloads import Workload, build_keras_style, make_data


def sync(device: str) -> None:
    """Wait for the work queued on the GPU, so a time read next covers all of it."""
    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------ rnnkit
def rnnkit_model(w: Workload, device: str):
    from rnnkit import Sequential, layers

    torch.manual_seed(0)
    return build_keras_style(w, layers, Sequential).to(device)


def kernel_paths(model) -> list[str]:
    """What each recurrent layer of an rnnkit model runs when training (its `kernel_path`),
    and how fit ran its step (`model.step_path`: eager, or replayed as a CUDA graph)."""
    paths = [
        f"{layer.name}: {layer.kernel_path}"
        for layer in model.layers
        if hasattr(layer, "kernel_path")
    ]
    if hasattr(model, "step_path"):
        paths.append(f"fit's step: {model.step_path}")
    return paths


class RnnkitTrainer:
    """`model.fit(x, y, batch_size, epochs=1, verbose=0, shuffle=False)`, one epoch a call.

    A callback times the epoch itself, leaving out fit's per-call set-up (data checks,
    callbacks, and on cuda the copy of the arrays to the GPU); the model and its optimizer
    state carry over from call to call.
    """

    def __init__(self, w: Workload, steps: int, device: str = "cpu"):
        from rnnkit.callbacks import Callback

        class EpochTimer(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                sync(device)
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                sync(device)
                self.seconds = time.perf_counter() - self.start

        self.w, self.timer = w, EpochTimer()
        self.x, self.y = make_data(w, w.batch * steps)
        self.model = rnnkit_model(w, device)

    def epoch(self) -> float:
        self.model.fit(
            self.x,
            self.y,
            batch_size=self.w.batch,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[self.timer],
        )
        return self.timer.seconds


def rnnkit_latency_calls(w: Workload, device: str = "cpu") -> dict:
    """`model.predict(x)` (numpy in and out) and `model(x)` (no grad, a tensor already on the
    device) on one sequence, as functions to time."""
    x, _ = make_data(w, 1)
    model = rnnkit_model(w, device)
    call = no_grad_call(model, torch.as_tensor(x, device=device), device)
    return {"predict": lambda: model.predict(x, verbose=0), "call": call}


# ------------------------------------------------------------------ hand-written torch
class TorchNet(nn.Module):
    """What a PyTorch user writes for the workload: nn.RNN/LSTM/GRU + Linear (+ Embedding).

    The recurrent layers of every workload are alike, so they are one torch module with
    `num_layers`; the head reads the last layer's final hidden state (both directions) or,
    for per-step targets, every step's output. Outputs are logits: the loss applies the
    sigmoid/softmax, as torch users do. torch's layers carry a second bias vector, a few
    hundred parameters more than Keras' layout; the matrix products are the same.
    """

    def __init__(self, w: Workload):
        super().__init__()
        first = w.recurrent[0]
        if any(
            (r.kind, r.units, r.bidirectional) != (first.kind, first.units, first.bidirectional)
            for r in w.recurrent
        ):
            raise ValueError(f"TorchNet needs alike recurrent layers; {w.name} mixes them.")
        self.per_step = w.per_step_targets
        self.directions = first.directions
        self.embedding = nn.Embedding(w.vocab, w.embed) if w.vocab else None
        rnn = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[first.kind]
        self.rnn = rnn(
            w.input_size,
            first.units,
            num_layers=len(w.recurrent),
            bidirectional=first.bidirectional,
            batch_first=True,
        )
        self.head = nn.Linear(first.units * self.directions, w.outputs)

    def forward(self, x):
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, embed)
        out, h = self.rnn(x)  # out (B, T, dirs*H); h (layers*dirs, B, H), or (h, c) for LSTM
        if self.per_step:
            return self.head(out)  # (B, T, outputs)
        h = h[0] if isinstance(h, tuple) else h
        last = torch.cat(list(h[-self.directions :]), dim=-1)  # (B, dirs*H)
        return self.head(last)


def torch_loss(w: Workload):
    if w.task == "binary":
        return nn.BCEWithLogitsLoss()
    if w.task == "regression":
        return nn.MSELoss()
    ce = nn.CrossEntropyLoss()
    return lambda logits, y: ce(logits.reshape(-1, w.outputs), y.reshape(-1))


class TorchTrainer:
    """The plain loop over pre-made batches: `opt.zero_grad(); loss.backward(); opt.step()`."""

    def __init__(self, w: Workload, steps: int, device: str = "cpu"):
        x, y = make_data(w, w.batch * steps)
        x, y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
        self.batches = [(x[i : i + w.batch], y[i : i + w.batch]) for i in range(0, len(x), w.batch)]
        torch.manual_seed(0)
        self.model = TorchNet(w).to(device)
        self.loss_fn = torch_loss(w)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.device, self.w = device, w

    def epoch(self) -> float:
        model, loss_fn, opt = self.model, self.loss_fn, self.opt
        sync(self.device)
        start = time.perf_counter()
        mae = torch.zeros((), device=self.device) if "mae" in self.w.metrics else None
        for xb, yb in self.batches:
            opt.zero_grad()
            pred = model(xb)
            loss = loss_fn(pred, yb)
            loss.backward()
            opt.step()
            if mae is not None:  # the running metric, kept on the device
                mae += (pred.detach() - yb).abs().mean()
        sync(self.device)
        return time.perf_counter() - start


def torch_latency_calls(w: Workload, device: str = "cpu") -> dict:
    """The torch module called on one sequence under no_grad, as a function to time."""
    x, _ = make_data(w, 1)
    torch.manual_seed(0)
    model = TorchNet(w).to(device).eval()
    return {"call": no_grad_call(model, torch.as_tensor(x, device=device), device)}


def no_grad_call(model, x, device: str):
    """`model(x)` under no_grad, waiting for the GPU to finish it, as a function to time."""

    def call():
        with torch.no_grad():
            y = model(x)
        sync(device)
        return y

    return call


def sgemm_rate(size: int = 1024, repeats: int = 10, device: str = "cpu") -> float:
    """The device's float32 matrix-product rate in FLOP/s (best of `repeats`, torch.matmul)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.matmul(a, b)  # warm up the BLAS threads, or the GPU
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def gemm_seconds(m: int, k: int, n: int, repeats: int = 5, device: str = "cpu") -> float:
    """Seconds of one `(m, k) @ (k, n)` float32 product: `torch.mm` into a preallocated
    output, called in a loop (call overhead included, as every per-step product pays it),
    best of `repeats` loops."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    out = torch.empty(m, n, device=device)
    flops = 2e10 if device == "cuda" else 5e7  # a loop of ~0.5 ms or more
    calls = min(1000, max(1, int(flops // (2 * m * k * n))))
    torch.mm(a, b, out=out)  # warm up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        sync(device)
        best = min(best, (time.perf_counter() - start) / calls)
    return best
