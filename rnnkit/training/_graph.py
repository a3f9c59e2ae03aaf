"""fit's training step on a GPU, recorded once as a CUDA graph and replayed for each batch.

A recurrent model's step on a GPU is many small kernels, and at these sizes the GPU waits for
Python to launch them: on an H100, rnnkit's eager step ran at about half the speed of a
hand-written PyTorch loop, with the same cuDNN kernels. A CUDA graph records the kernels of
the forward pass, the loss and the backward pass once; each batch then copies its arrays into
the graph's input tensors and launches the whole recording at once. The gradients land in
the same tensors every time, and the optimizer, the loss tracker, the metrics and the
callbacks run as before, after each replay: every optimizer keeps its exact update, clipping
and schedules included.

fit records the step when `model.compile(jit_compile=...)` is not False (Keras' switch for
its compiled step; "auto" by default) and the data allows it (`blocker` says why not):
in-memory arrays on a CUDA model, no stateful layer, and any Embedding reading the model's
input itself. Before recording, it checks all the data at once: the token ids and class
labels that each batch's forward pass would otherwise check (`rnnkit._capture`). The first
`WARMUP` batches run eagerly on the recording's stream (cuDNN and cuBLAS set themselves up
there), the next is recorded and replayed, and so is every later batch of that shape; a
smaller last batch runs eagerly. A later fit call (once per epoch, say) replays the same
recording while the model trains the same weights with the same optimizer and loss. If
recording fails, the step runs eagerly from then on and the debug log says why.
"""

from __future__ import annotations

import logging
import weakref

import torch

from rnnkit._capture import recording

log = logging.getLogger("rnnkit")

WARMUP = 3  # eager steps on the side stream before recording
# model -> its GraphStep, kept from one fit call to the next (fit once per epoch, say) while
# the model trains the same weights with the same optimizer and loss; weakly, so a model
# that is deleted or deep-copied takes nothing of it along.
_graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# device -> the one side stream every graphed fit on it warms up and records on: autograd
# keeps a weight's gradient accumulator across steps and warns when a step on another
# stream meets it (a model recorded again after compile, say)
_streams: dict = {}


def blocker(model, x, y) -> str | None:
    """Why fit cannot replay its step as a CUDA graph for this model and data (None: it can)."""
    if getattr(model, "jit_compile", "auto") is False:
        return "compile(jit_compile=False)"
    device = model.weights_device()
    if device is None or device.type != "cuda":
        return "not on a CUDA GPU"
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        return "the data is not one in-memory array of inputs and one of targets"
    if any(getattr(m, "stateful", False) for m in model.modules()):
        return "a stateful layer carries its states from batch to batch"
    if _embeddings_on_input(model) is None:
        return "an Embedding reads another layer's output, not the model's input"
    return None


def _embeddings_on_input(model):
    """The model's Embedding layers, when all of them read the model's input (then fit can
    check all the ids at once); None when one reads something else."""
    from rnnkit.layers._embedding import Embedding

    embeddings = [m for m in model.modules() if isinstance(m, Embedding)]
    if not embeddings:
        return []
    layers = [
        layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"
    ]
    if len(embeddings) == 1 and layers and layers[0] is embeddings[0]:
        return embeddings
    return None


def _kind(t):
    """What of an array a recording depends on: its shape past the first axis and dtype."""
    return None if t is None else (tuple(t.shape[1:]), t.dtype)


def _same(recorded, now) -> bool:
    """Whether `for_model`'s keys name the same optimizer, loss, penalties, batches and
    weights."""
    (opt_a, loss_a, pen_a, weights_a), (opt_b, loss_b, pen_b, weights_b) = recorded, now
    return (
        opt_a is opt_b
        and loss_a is loss_b
        and pen_a == pen_b
        and len(weights_a) == len(weights_b)
        and all(p is q and a == b for (p, a), (q, b) in zip(weights_a, weights_b))
    )


class GraphStep:
    """Runs fit's forward and backward passes for one batch: eagerly for the first `WARMUP`
    batches, then from a CUDA graph recorded on the next (`run`)."""

    def __init__(self, step, model, params):
        # The model and this fit's step weakly: `_graphs` keys its models weakly, and a value
        # holding its key would keep every model ever trained on a GPU alive, graph and all.
        self._step, self._model = weakref.ref(step), weakref.ref(model)
        self.params = params
        self._stream = None
        self.warm = 0
        self.graph = None
        self.failed = None  # why recording failed
        self.static = None  # (x, y, sample_weight) the graph reads
        self.outputs = None  # (loss, y_pred, mask) the graph writes
        self.grads = None  # the gradients it writes
        self.key = None  # what it was recorded for (`for_model`)

    @property
    def step(self):
        return self._step()

    @property
    def model(self):
        return self._model()

    @property
    def stream(self) -> torch.cuda.Stream:
        """The side stream of the model's GPU, made on first use."""
        if self._stream is None:
            device = self.params[0].device
            if device not in _streams:
                _streams[device] = torch.cuda.Stream(device=device)
            self._stream = _streams[device]
        return self._stream

    @classmethod
    def for_model(cls, step, model, params, batches=()) -> GraphStep:
        """The model's GraphStep from an earlier fit, warmed up and maybe recorded, when it
        trains the same weights (the same tensors, in the same memory) with the same optimizer
        and loss on batches of the same kind (`batches`: the batch size, and the arrays, whose
        shapes past the first axis and dtypes count); else a new one."""
        kind = tuple(t if isinstance(t, int) else _kind(t) for t in batches)
        # the objects themselves, compared by identity: an id can be reused once freed
        key = (
            model.optimizer,
            model.loss,
            (step.penalized, kind),
            [(p, p.data_ptr()) for p in params],
        )
        graph = _graphs.get(model)
        if graph is None or graph.failed is not None or not _same(graph.key, key):
            graph = cls(step, model, params)
            graph.key = key
            _graphs[model] = graph
        graph._step = weakref.ref(step)  # this fit's tracker and metrics, for eager batches
        return graph

    @staticmethod
    def check_data(model, x, y, output_shape, check_targets) -> None:
        """Every token id and class label of the data, as each batch's forward pass checks
        them when it runs eagerly; before recording, since the graph cannot."""
        for layer in _embeddings_on_input(model):
            layer._ids(x)
        check_targets(model.loss, y, output_shape)

    def takes(self, x, y, sample_weight) -> bool:
        """Whether this batch can replay the graph (or warm it up): the shapes it recorded."""
        if self.failed is not None:
            return False
        if self.static is None:
            return True
        for given, static in zip((x, y, sample_weight), self.static):
            if (given is None) != (static is None):
                return False
            if given is not None and (given.shape, given.dtype) != (static.shape, static.dtype):
                return False
        return True

    def eager(self, x, y, sample_weight):
        """Forward and backward for a batch the graph does not take (a smaller last batch),
        eagerly, on the graph's stream: autograd keeps each weight's gradient accumulator
        from step to step, and warns when a step on another stream meets it."""
        return self._on_side_stream(self._eager, x, y, sample_weight)

    def run(self, x, y, sample_weight):
        """Forward and backward for a batch that `takes`; returns the loss, the predictions
        and their mask (graph outputs, valid until the next `run`)."""
        if self.graph is not None:
            for static, value in zip(self.static, (x, y, sample_weight)):
                if static is not None:
                    static.copy_(value)
            for p, grad in zip(self.params, self.grads):
                p.grad = grad  # an eager step in between may have cleared them
            self.graph.replay()
            return self.outputs
        if self.warm < WARMUP:
            self.warm += 1
            return self.eager(x, y, sample_weight)
        try:
            self._record(x, y, sample_weight)
        except Exception as error:  # noqa: BLE001 - anything the recording hits: run eagerly
            torch.cuda.synchronize()
            self.graph, self.static, self.failed = None, None, f"{type(error).__name__}: {error}"
            log.debug("rnnkit: fit runs its step eagerly; a CUDA graph failed: %s", self.failed)
            return self.eager(x, y, sample_weight)
        log.debug("rnnkit: fit replays its training step as a CUDA graph")
        return self.run(x, y, sample_weight)

    def _eager(self, x, y, sample_weight):
        self.model.optimizer.zero_grad()
        loss, y_pred, mask = self.step.compute(x, y, sample_weight, training=True)
        loss.backward()
        return loss, y_pred, mask

    def _on_side_stream(self, fn, *args):
        with torch.cuda.device(self.stream.device):  # the model's GPU, not the current one
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                out = fn(*args)
            torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def _record(self, x, y, sample_weight):
        self.static = tuple(None if t is None else t.clone() for t in (x, y, sample_weight))
        self.model.optimizer.zero_grad(set_to_none=True)  # the graph makes the gradients
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.stream.device):
            self.stream.wait_stream(torch.cuda.current_stream())
            with recording(), torch.cuda.graph(graph, stream=self.stream):
                loss, y_pred, mask = self.step.compute(*self.static, training=True)
                loss.backward()
            torch.cuda.current_stream().wait_stream(self.stream)
        # detached: the same memory, which every replay rewrites, without the autograd graph
        self.outputs = (loss.detach(), y_pred.detach(), mask)
        self.grads = [p.grad for p in self.params]
        self.graph = graph
