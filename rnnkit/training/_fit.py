"""`compile`, `fit` and `evaluate`: the Keras training loop on torch autograd.

One step is the textbook one:

    y_pred = model(x, training=True)
    loss = loss_fn(y, y_pred) + sum(model.losses)     # regularization penalties
    loss.backward(); optimizer.step()                 # torch computes every gradient
    model.apply_constraints()

Masked time steps (padding) count in neither the loss nor the metrics.
"""

from __future__ import annotations

import math
import warnings

import torch

from rnnkit import _tree, losses, metrics, optimizers
from rnnkit import distribution as distribution_
from rnnkit.callbacks._base import Callback, CallbackList, History
from rnnkit.callbacks._progress import progress_logger
from rnnkit.callbacks._stopping import TerminateOnNaN
from rnnkit.layers._base import Layer, get_mask
from rnnkit.training import _direct, _parallel
from rnnkit.training._data import (
    ArrayBatches,
    check_count,
    input_dtype,
    is_array_like,
    make_batches,
    num_samples,
    take,
    to_tensors,
)
from rnnkit.training._graph import GraphStep
from rnnkit.training._graph import blocker as graph_blocker
from rnnkit.training._memory import keep_freed_memory


def compile_model(
    model,
    optimizer="rmsprop",
    loss=None,
    metrics=None,
    loss_weights=None,
    weighted_metrics=None,
    **kwargs,
):
    """`model.compile(optimizer='adam', loss='mse', metrics=['mae'])`: choose how to train.

    Names are resolved into objects now, so a typo fails here, not mid-training. As in
    Keras, `metrics` ignore `sample_weight` and `class_weight` (the loss uses them);
    `weighted_metrics` use them.
    """
    kwargs.pop("run_eagerly", None)  # Keras execution options with no meaning here
    kwargs.pop("steps_per_execution", None)
    # Keras' switch for its compiled step; here, fit's step as a CUDA graph on a GPU, and
    # its direct step (no autograd graph) on the CPU
    jit_compile = kwargs.pop("jit_compile", "auto")
    if jit_compile not in (True, False, "auto"):
        raise ValueError(
            f"compile(): jit_compile must be True, False or 'auto'; got {jit_compile!r}. "
            "'auto' (and True) replay fit's step as a CUDA graph on a GPU and run its direct "
            "step on the CPU where they can; False keeps the eager step."
        )
    if kwargs:
        raise TypeError(f"compile() got unexpected argument(s) {', '.join(sorted(kwargs))}.")
    if loss is None:
        raise ValueError(
            f"compile() on model '{model.name}' needs a loss, e.g. loss='mse' for regression or "
            "loss='binary_crossentropy' for two classes."
        )
    if isinstance(loss, (list, dict)) or loss_weights is not None:
        raise ValueError(
            "compile(): rnnkit takes one loss for the model's output so far; several losses or "
            "loss_weights for several outputs are not supported yet."
        )
    model.optimizer = optimizers.get(optimizer)
    model.loss = losses.get(loss)
    model.metric_identifiers = list(metrics or [])
    model.weighted_metric_identifiers = list(weighted_metrics or [])
    for identifier in model.metric_identifiers + model.weighted_metric_identifiers:
        if not (isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc")):
            _metrics_get(identifier, model.loss)  # fail early on unknown names
    model.compiled_metrics = None  # built on the first batch, when shapes are known
    model.jit_compile = jit_compile
    model.compiled = True


def _metrics_get(identifier, loss, y=None, y_pred=None):
    shapes = {}
    if y is not None:
        shapes = {"y_true_shape": tuple(y.shape), "y_pred_shape": tuple(y_pred.shape)}
    return metrics.get(identifier, loss=loss, **shapes)


def _sorted(logs: dict) -> dict:
    """Keras hands callbacks and History their logs sorted by name: accuracy, loss, val_..."""
    return dict(sorted(logs.items()))


class _Step:
    """Loss, metrics and their running means for one compiled model."""

    def __init__(self, model, dp=None):
        self.model = model
        self.dp = dp  # a DataParallel: each process steps on its slice of every batch
        self.loss_tracker = metrics.Mean(name="loss")
        # Walking every module for penalties and constraints costs more than a small model's
        # step; fit and evaluate build the model before making a _Step, so look once.
        self.penalized, self.constrained = _penalties_and_constraints(model)
        self.trains = bool(model.trainable_weights)  # False: nothing to differentiate

    def metric_list(self, y, y_pred):
        """The `metrics` then the `weighted_metrics`, built once the shapes are known."""
        model = self.model
        if model.compiled_metrics is None:
            plain = [_metrics_get(m, model.loss, y, y_pred) for m in model.metric_identifiers]
            weighted = [
                _metrics_get(m, model.loss, y, y_pred) for m in model.weighted_metric_identifiers
            ]
            for m in weighted:
                if any(m.name == p.name for p in plain):
                    m.name = f"weighted_{m.name}"  # Keras' name when both lists hold it
            model.compiled_metrics = plain + weighted
        return model.compiled_metrics

    def reset(self):
        self.loss_tracker.reset_state()
        for m in self.model.compiled_metrics or []:
            m.reset_state()

    def logs(self) -> dict[str, float]:
        """`{"loss": ..., metric names...}`, the loss first and metrics in compile order."""
        if self.dp is not None:
            return _parallel.global_logs(self, self.dp)
        out = {"loss": float(self.loss_tracker.result())}
        for m in self.model.compiled_metrics or []:
            out[m.name] = float(m.result())
        return out

    def forward(self, x, y, sample_weight, training):
        """The loss of a batch, with the loss tracker and metrics updated."""
        loss, y_pred, mask = self.compute(x, y, sample_weight, training)
        self.track(x, y, sample_weight, loss, y_pred, mask)
        return loss

    def compute(self, x, y, sample_weight, training):
        """The loss of a batch, and the predictions and their mask for `track`."""
        y_pred = self.model(x, training=training)
        mask = get_mask(y_pred)
        loss = self.model.loss(y, y_pred, sample_weight=sample_weight, mask=mask)
        penalties = self.model.losses if self.penalized else None
        if penalties:
            loss = loss + torch.stack([p.reshape(()) for p in penalties]).sum()
        return loss, y_pred, mask

    def track(self, x, y, sample_weight, loss, y_pred, mask):
        """Add a batch's loss and predictions to the loss tracker and the metrics (detached:
        no graph is recorded, without the cost of a no-grad context every batch)."""
        rows = x.shape[0] if isinstance(x, torch.Tensor) else num_samples(x)
        self.loss_tracker.update_state(loss.detach() if loss.requires_grad else loss, rows)
        self.track_metrics(y, sample_weight, y_pred, mask)

    def track_metrics(self, y, sample_weight, y_pred, mask):
        """Add a batch's predictions to the metrics."""
        unweighted = len(self.model.metric_identifiers)
        for i, m in enumerate(self.metric_list(y, y_pred)):
            weight = sample_weight if i >= unweighted else None
            if isinstance(m, metrics.MeanMetricWrapper):
                m.update_state(y, y_pred.detach(), sample_weight=weight, mask=mask)
            else:  # Keras ignores masks for AUC, Precision, Recall, RMSE too
                m.update_state(y, y_pred.detach(), sample_weight=weight)


def _penalties_and_constraints(model) -> tuple[bool, bool]:
    """Whether `model.losses` can hold anything, and whether any weight has a constraint."""
    penalized = constrained = False
    for layer in model.modules():
        if not isinstance(layer, Layer):
            continue
        custom = type(layer).losses is not Layer.losses  # a layer that adds its own losses
        infos = layer._weight_info.values()
        penalized |= (
            custom
            or layer.activity_regularizer is not None
            or bool(layer._activity_losses)
            or any(regularizer is not None for regularizer, _, _ in infos)
        )
        constrained |= type(layer).apply_constraints is not Layer.apply_constraints or any(
            constraint is not None for _, constraint, _ in infos
        )
    return penalized, constrained


def _check_finite(where, name, value):
    for t in _tree.flatten(value):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{where}: {name} contains {bad} NaN or infinite value(s). Fill or drop them "
                "before training (e.g. np.nan_to_num, or pandas .dropna())."
            )


def _check_arrays(where, x, y, sample_weight):
    sizes = [int(t.shape[0]) for t in _tree.flatten(x)]
    if len(set(sizes)) > 1:
        raise ValueError(
            f"{where}: x is {len(sizes)} arrays, one per model input, of {sizes} samples; each "
            "input needs one row per sample. If they are sequences of different lengths, they "
            "are one input: pad them, x = rnnkit.utils.pad_sequences(x)."
        )
    _check_finite(where, "x", x)
    if y is None:
        raise ValueError(f"{where}: y (the targets) is missing; pass fit(x, y, ...).")
    _check_finite(where, "y", y)
    _check_finite(where, "sample_weight", sample_weight)
    nx, ny = num_samples(x), num_samples(y)
    if nx != ny:
        raise ValueError(
            f"{where}: x has {nx} samples but y has {ny}. They must have the same length along "
            "the first axis (one target per input sequence)."
        )
    if nx == 0:
        raise ValueError(f"{where}: got 0 samples.")
    if sample_weight is not None and num_samples(sample_weight) != nx:
        raise ValueError(
            f"{where}: sample_weight has {num_samples(sample_weight)} entries for {nx} samples; "
            "give one weight per sample (or per time step: shape (samples, timesteps))."
        )


def _check_against_model(model, x0, y, where=None) -> tuple:
    """Inputs and targets that cannot fit the model or its loss fail before the first step.

    The first batch `x0` through the model, with no gradient and no dropout, builds it (with
    Keras' built shape, which keeps the batch size) and tells the output shape. Once built,
    its first sequence alone tells the shape, where a whole batch would cost a training
    step's forward pass (~13 ms at T=1000) on every `fit` call. A stateful model, whose states
    are per batch row, always takes the whole batch and gets its carried states back
    afterwards. `where` names the data in the message (the validation data). Returns the
    output's shape (for the batch).
    """
    stateful = [m for m in model.modules() if getattr(m, "stateful", False)]
    carried = [m.states for m in stateful]
    rows = num_samples(x0)
    try:
        with torch.no_grad():
            shape = tuple(_output_of_one(model, x0, whole=bool(stateful) or not model.built))
        check_targets(model.loss, y, (rows, *shape[1:]))
        return (rows, *shape[1:])
    except ValueError as error:
        if where is None:
            raise
        raise ValueError(f"{where}: {error}") from None
    finally:
        for layer, states in zip(stateful, carried):
            layer.states = states


def _output_of_one(model, x0, whole):
    """The model's output shape on the first sequence of `x0` (or all of it, if `whole`)."""
    if whole:
        return model(x0).shape
    try:
        return model(take(x0, slice(0, 1))).shape
    except Exception:  # e.g. a layer written for the batch size
        return model(x0).shape  # the whole batch: it runs, or fails naming the batch as given


def check_targets(loss, y, y_pred_shape) -> None:
    """Catch targets that cannot fit the loss before any training step."""
    if isinstance(y, (list, dict)):
        return
    name = type(loss).__name__
    units = y_pred_shape[-1]
    values = y.detach()
    integral = not values.is_floating_point() or bool(torch.equal(values, values.round()))
    if name == "BinaryCrossentropy":
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            classes = torch.unique(values).numel()
            raise ValueError(
                f"loss='binary_crossentropy' needs targets in [0, 1] (two classes); got values "
                f"from {low:g} to {high:g} ({classes} distinct). For {classes} classes use "
                f"loss='sparse_categorical_crossentropy' with a last layer "
                f"Dense({classes}, activation='softmax')."
            )
    elif name == "SparseCategoricalCrossentropy":
        if values.dim() == len(y_pred_shape) and values.shape[-1] != 1:
            raise ValueError(
                "loss='sparse_categorical_crossentropy' needs one class id per prediction "
                f"(targets of shape {tuple(values.shape[:-1])}); got shape "
                f"{tuple(values.shape)}, which looks one-hot. For one-hot targets use "
                "loss='categorical_crossentropy', or pass the class ids y.argmax(-1)."
            )
        if not integral:
            raise ValueError(
                "loss='sparse_categorical_crossentropy' needs integer class ids as targets; got "
                "non-integer values. For real-valued targets use loss='mse'; for one-hot rows "
                "use loss='categorical_crossentropy'."
            )
        high = int(values.max())
        ignore = getattr(loss, "ignore_class", None)
        if high >= units and high != ignore:
            raise ValueError(
                f"loss='sparse_categorical_crossentropy': targets go up to class {high}, but the "
                f"model outputs {units} classes. Make the last layer Dense({high + 1}, "
                "activation='softmax') (classes are numbered from 0)."
            )
        if int(values.min()) < 0 and int(values.min()) != ignore:
            raise ValueError(
                "loss='sparse_categorical_crossentropy' needs class ids from 0 up; got "
                f"{int(values.min())}."
            )
    elif name == "CategoricalCrossentropy" and (
        values.dim() < len(y_pred_shape) or values.shape[-1] != units
    ):
        raise ValueError(
            f"loss='categorical_crossentropy' needs one-hot targets of shape (..., {units}) "
            f"like the model's output; got shape {tuple(values.shape)}. For integer class ids "
            "use loss='sparse_categorical_crossentropy'."
        )


def _class_weights(class_weight, y):
    """Per-sample weights from `{class: weight}` and the targets (ids, 0/1 or one-hot)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}}; got {class_weight!r}.")
    labels = y.argmax(dim=-1) if y.dim() > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
    labels = labels.round().long()
    missing = sorted(set(labels.unique().tolist()) - set(class_weight))
    if missing:
        raise ValueError(
            f"class_weight has no weight for class(es) {missing}; give every class present in "
            f"y a weight, e.g. {{{', '.join(f'{c}: 1.0' for c in missing)}}}."
        )
    table = torch.zeros(int(labels.max()) + 1, dtype=torch.float32)
    for label, weight in class_weight.items():
        if 0 <= int(label) < len(table):
            table[int(label)] = float(weight)
    return table[labels]


def fit_model(
    model,
    x=None,
    y=None,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    class_weight=None,
    sample_weight=None,
    initial_epoch=0,
    steps_per_epoch=None,
    validation_steps=None,
    validation_batch_size=None,
    validation_freq=1,
):
    """`model.fit(x, y, epochs=10)`: train on `(x, y)` in shuffled batches; returns a `History`.

    On a GPU the step is recorded once as a CUDA graph and replayed for each batch where the
    model and data allow it (`rnnkit.training._graph`); on the CPU a Sequential model whose
    layers all have hand-written backward passes trains with the direct step, no autograd
    graph (`rnnkit.training._direct`). `model.step_path` says which step ran and why, and
    `compile(jit_compile=False)` keeps the eager one. A loss that turns NaN or infinite
    is reported once per call, as a RuntimeWarning. Stopped at any point (Ctrl-C), the model
    can be fitted again and saved.

    Args:
        x, y: inputs and targets: numpy arrays, pandas objects, torch tensors or lists
            (a list/dict of them for several inputs); or `x` alone as a torch `Dataset`,
            `DataLoader` or generator yielding `(x, y)` / `(x, y, sample_weight)` batches.
            Integer and bool inputs are cast to the model's float dtype by its first layer,
            unless it is an Embedding (then they are ids).
        batch_size: samples per step (default 32).
        epochs: train until this epoch number (counting from `initial_epoch`); 0 builds the
            model and optimizer and returns an empty History, as in Keras.
        verbose: `'auto'` (a live bar in a terminal, a line per epoch elsewhere), 0, 1, 2.
        callbacks: `rnnkit.callbacks` objects (EarlyStopping, ModelCheckpoint, ...).
        validation_split: fraction of the samples, taken from the end, held out.
        validation_data: `(x_val, y_val)` evaluated after every epoch (`val_*` in logs).
        shuffle: shuffle the training samples every epoch.
        class_weight: `{class: weight}` to weight samples by their target class.
        sample_weight: a weight per sample `(samples,)` or per step `(samples, timesteps)`.
        initial_epoch: the epoch to start from (to resume a run).
        steps_per_epoch: batches per epoch. On arrays, as in Keras, each epoch goes on through
            the (shuffled) pass where the last one stopped; one that runs out ends the epoch.

    Counts may be numpy integers (`np.int64(4)`).
    """
    where = "fit"
    _check_compiled(model, where)
    batch_size = check_count(where, "batch_size", 32 if batch_size is None else batch_size)
    epochs = check_count(where, "epochs", epochs, minimum=0)
    initial_epoch = check_count(where, "initial_epoch", initial_epoch, minimum=0)
    steps_per_epoch = check_count(where, "steps_per_epoch", steps_per_epoch, allow_none=True)
    validation_freq = check_count(where, "validation_freq", validation_freq)
    validation_steps = check_count(where, "validation_steps", validation_steps, allow_none=True)
    validation_batch_size = check_count(
        where, "validation_batch_size", validation_batch_size, allow_none=True
    )
    if x is None:
        raise ValueError(f"{where}: x (the inputs) is missing; pass fit(x, y, ...).")
    _check_validation_split(where, validation_split, x)
    device = model.weights_device()
    keep_freed_memory(device)
    dp = distribution_.distribution()  # None: one process, the step below as it is
    if dp is not None:
        _parallel.check_model(model, batch_size, dp, where)
    split = validation_split if validation_data is None else 0.0  # Keras: the data wins
    data, held_out = _training_batches(
        model,
        x,
        y,
        sample_weight,
        class_weight,
        split,
        batch_size,
        shuffle,
        steps_per_epoch,
        device,
    )
    validation_data = held_out if validation_data is None else validation_data
    val_data = _validation_batches(
        model, validation_data, validation_batch_size or batch_size, validation_steps, device
    )

    output_shape = _check_against_model(model, *data.peek()[:2])
    if val_data is not None:
        _check_against_model(model, *val_data.peek()[:2], where="fit (validation_data)")
    if dp is not None:
        dp.broadcast_weights(model)  # built now: every process starts from rank 0's weights
        data = _parallel.ShardedBatches(data, dp)
        val_data = None if val_data is None else _parallel.ShardedBatches(val_data, dp)
        verbose = verbose if distribution_.is_writer() else 0

    step = _Step(model, dp)
    if step.trains:
        model.optimizer.build(model.trainable_weights)
    else:  # as Keras: the loss and metrics are measured, nothing is updated
        warnings.warn(
            f"fit: model '{model.name}' has no trainable weights, so training changes nothing; "
            "it measures the loss and metrics only. Set trainable=True on the layers to train.",
            UserWarning,
            stacklevel=3,
        )
    graph = _graph_step(model, step, data, output_shape) if dp is None else None
    if dp is not None:
        model.step_path = f"eager (data-parallel on {dp.world_size} processes)"
    elif graph is None:
        graph = _direct_step(model, step, data)
    params = {
        "epochs": epochs,
        "steps": data.num_batches,
        "verbose": verbose,
        "batch_size": batch_size,
    }
    callback_list = _fit_callbacks(model, callbacks, verbose, params)
    if dp is not None:  # batch logs are a collective: every process makes them, or none
        callback_list.wants_batch_logs = dp.all_reduce([callback_list.wants_batch_logs])[0] > 0
    model.stop_training = False
    model.initial_epoch = initial_epoch
    try:
        logs = _train(model, step, graph, data, val_data, callback_list, epochs, validation_freq)
    except BaseException:  # Ctrl-C or an error: no on_train_end, but close what is open
        callback_list.interrupted()
        raise
    if isinstance(graph, GraphStep) and graph.failed is not None:
        model.step_path = f"eager (recording a CUDA graph failed: {graph.failed})"
    callback_list.on_train_end(logs)
    return model.history


def _check_compiled(model, where):
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Model '{model.name}' must be compiled before {where}: "
            "model.compile(optimizer='adam', loss='mse') (or the loss that fits your targets)."
        )


def _check_validation_split(where, validation_split, x):
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(
            f"{where}: validation_split is the fraction of samples held out and must be in "
            f"[0, 1); got {validation_split!r}."
        )
    if validation_split and not is_array_like(x):
        raise ValueError(
            f"{where}: validation_split needs in-memory arrays; with a {type(x).__name__} pass "
            "validation_data= instead."
        )


def _training_batches(
    model, x, y, sample_weight, class_weight, validation_split, batch_size, shuffle, steps, device
):
    """fit's training batches, and the `(x, y, sample_weight)` that `validation_split` holds
    out of in-memory arrays (None without it)."""
    where = "fit"
    if not is_array_like(x):
        return make_batches(x, y, sample_weight, batch_size, shuffle, steps, device), None
    dtype = input_dtype(model)
    x, y = to_tensors(x, device, dtype=dtype), to_tensors(y, device, "y", dtype)
    sample_weight = to_tensors(sample_weight, device, "sample_weight")
    _check_arrays(where, x, y, sample_weight)
    held_out = None
    if validation_split:
        n = num_samples(x)
        split = int(n * (1.0 - validation_split))
        if split == 0 or split == n:
            raise ValueError(
                f"{where}: validation_split={validation_split} of {n} samples leaves an "
                "empty training or validation set; use more data or another fraction."
            )
        # As in Keras, the held-out samples keep their sample_weight but not class_weight.
        held_out = tuple(take(v, slice(split, n)) for v in (x, y, sample_weight))
        x, y, sample_weight = (take(v, slice(0, split)) for v in (x, y, sample_weight))
    if class_weight is not None:
        weights = _class_weights(class_weight, y).to(y.device)
        sample_weight = weights if sample_weight is None else sample_weight * weights
    return make_batches(x, y, sample_weight, batch_size, shuffle, steps, device, True), held_out


def _graph_step(model, step, data, output_shape):
    """The CUDA-graph step where the model and data allow it (None: the eager step), with
    `model.step_path` saying which and why."""
    arrays = isinstance(data, ArrayBatches)
    x, y = (data.x, data.y) if arrays else (None, None)
    why = graph_blocker(model, x, y) if step.trains else "no trainable weights"
    graph = None
    if why is None:
        GraphStep.check_data(model, x, y, output_shape, check_targets)
        batches = (data.batch_size, x, y, data.sample_weight)
        graph = GraphStep.for_model(step, model, model.optimizer.params, batches)
    model.step_path = "CUDA graph" if graph is not None else f"eager ({why})"
    return graph


def _direct_step(model, step, data):
    """fit's direct step (`_direct`) where the model and data allow it (None: the eager
    step), with `model.step_path` saying which and why."""
    why = _direct.blocker(model, step, data)
    if why is not None:
        device = model.weights_device()
        if device is None or device.type == "cpu":  # on a GPU, why no CUDA graph matters
            model.step_path = f"eager ({why})"
        return None
    model.step_path = "direct (hand-written backward passes, no autograd graph)"
    return _direct.DirectStep(model)


def _fit_callbacks(model, callbacks, verbose, params):
    """The user's callbacks, then a new `model.history`, then the progress display."""
    model.history = History()
    extra = [c for c in [progress_logger(verbose)] if c is not None]
    return CallbackList(list(callbacks or []) + [model.history] + extra, model, params)


def _train(model, step, graph, data, val_data, callback_list, epochs, validation_freq):
    """The epochs from `model.initial_epoch`: each a pass over `data` and maybe validation.
    Returns the last epoch's logs ({} when no epoch ran)."""
    watch = _DivergenceWatch.for_fit(model, callback_list, epochs, data.num_batches)
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(model.initial_epoch, epochs):
        step.reset()
        callback_list.on_epoch_begin(epoch)
        for batch, (xb, yb, wb) in enumerate(data):
            callback_list.on_train_batch_begin(batch)
            loss = _train_step(model, step, graph, xb, yb, wb)
            batch_logs = _sorted(step.logs()) if callback_list.wants_batch_logs else None
            watch.after_batch(epoch, batch, loss, batch_logs)
            callback_list.on_train_batch_end(batch, batch_logs)
            if model.stop_training:
                break
        logs = step.logs()
        watch.after_epoch(epoch, logs)
        if val_data is not None and (epoch + 1) % validation_freq == 0:
            val_logs = _run_evaluation(step, val_data, callback_list)
            logs.update({f"val_{key}": value for key, value in val_logs.items()})
        logs = _sorted(logs)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    return logs


def _train_step(model, step, graph, xb, yb, wb):
    """One batch: forward and backward (replayed from the CUDA graph where it takes the
    batch), metrics, the update and constraints. Returns the batch's loss."""
    if step.dp is not None:
        return _parallel.train_step(model, step, step.dp, xb, yb, wb)
    if isinstance(graph, _direct.DirectStep):
        loss, y_pred = graph.run(xb, yb, wb)
        mask = None
    elif graph is not None:
        run = graph.run if graph.takes(xb, yb, wb) else graph.eager
        loss, y_pred, mask = run(xb, yb, wb)
    else:
        if step.trains:  # without trainable weights the loss is only measured, as in Keras
            model.optimizer.zero_grad()
        loss, y_pred, mask = step.compute(xb, yb, wb, training=True)
        if step.trains:
            loss.backward()
    step.track(xb, yb, wb, loss, y_pred, mask)
    if step.trains:
        model.optimizer.step()
        if step.constrained:
            model.apply_constraints()
    return loss


class _DivergenceWatch:
    """Warns once per fit when the loss turns NaN or infinite: training is diverging.

    Each batch's loss is read only where reading it costs no wait for the GPU (`per_batch`);
    otherwise the epoch's mean loss tells at the epoch's end, naming the epoch alone.
    """

    def __init__(self, epochs, steps, per_batch):
        self.epochs, self.steps, self.per_batch = epochs, steps, per_batch
        self.done = False  # warned already, or TerminateOnNaN will say it

    @classmethod
    def for_fit(cls, model, callback_list, epochs, steps):
        watch = cls(epochs, steps, per_batch=callback_list.wants_batch_logs)
        device = model.weights_device()
        # Reading a GPU loss waits for the GPU; on the CPU, or read for batch logs anyway, free.
        watch.per_batch |= device is None or device.type == "cpu"
        # TerminateOnNaN reports the batch itself; a second warning would only repeat it.
        watch.done = any(isinstance(c, TerminateOnNaN) for c in callback_list.callbacks)
        return watch

    def after_batch(self, epoch, batch, loss, logs):
        if self.done or not self.per_batch:
            return
        value = logs["loss"] if logs is not None else float(loss.detach())
        if not math.isfinite(value):
            self._warn(value, epoch, batch)

    def after_epoch(self, epoch, logs):
        if not self.done and not math.isfinite(logs["loss"]):
            self._warn(logs["loss"], epoch, None)

    def _warn(self, value, epoch, batch):
        self.done = True
        at = f"epoch {epoch + 1}/{self.epochs}"
        if batch is not None:
            at += f", batch {batch + 1}" + (f"/{self.steps}" if self.steps else "")
        warnings.warn(
            f"fit: the loss became {value} at {at}: training is diverging, and the weights "
            "with it. Clip the gradients, e.g. optimizer=rnnkit.optimizers.Adam(clipnorm=1.0), "
            "or lower the learning rate (e.g. 10x); callbacks=[TerminateOnNaN()] stops "
            "training when it happens.",
            RuntimeWarning,
            stacklevel=5,  # _warn, after_batch/after_epoch, _train, fit_model: the caller of fit
        )


def _validation_batches(model, validation_data, batch_size, steps, device):
    if validation_data is None:
        return None
    if not is_array_like(validation_data) or not isinstance(validation_data, (tuple, list)):
        return make_batches(validation_data, None, None, batch_size, False, steps, device)
    if len(validation_data) not in (2, 3):
        raise ValueError(
            "fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight); got "
            f"a {type(validation_data).__name__} of length {len(validation_data)}."
        )
    vx = to_tensors(validation_data[0], device, "x_val", input_dtype(model))
    vy = to_tensors(validation_data[1], device, "y_val", input_dtype(model))
    vw = None
    if len(validation_data) == 3:
        vw = to_tensors(validation_data[2], device, "sample_weight_val")
    _check_arrays("fit (validation_data)", vx, vy, vw)
    return ArrayBatches(vx, vy, vw, batch_size, shuffle=False, steps=steps)


def _run_evaluation(step, data, callback_list):
    """The loss and metrics over `data`, dropout off; the callbacks get Keras' test hooks."""
    step.reset()
    callback_list.on_test_begin()
    batch_logs = any(
        type(c).on_test_batch_end is not Callback.on_test_batch_end
        or "on_test_batch_end" in vars(c)  # set on the instance (LambdaCallback)
        for c in callback_list.callbacks
    )
    if step.dp is not None:  # batch logs are a collective: every process makes them, or none
        batch_logs = step.dp.all_reduce([batch_logs])[0] > 0
    with torch.no_grad():
        for batch, (xb, yb, wb) in enumerate(data):
            callback_list.on_test_batch_begin(batch)
            if step.dp is not None:
                _parallel.test_step(step, step.dp, xb, yb, wb)
            else:
                step.forward(xb, yb, wb, training=False)
            callback_list.on_test_batch_end(batch, _sorted(step.logs()) if batch_logs else None)
    logs = step.logs()
    callback_list.on_test_end(_sorted(logs))
    return logs


def evaluate_model(
    model,
    x=None,
    y=None,
    batch_size=None,
    verbose="auto",
    sample_weight=None,
    steps=None,
    callbacks=None,
    return_dict=False,
):
    """`model.evaluate(x, y)`: the loss and metrics on `(x, y)`, with dropout off.

    Returns the loss alone when there are no metrics, else `[loss, *metrics]`, or a dict
    with `return_dict=True`.
    """
    _check_compiled(model, "evaluate")
    batch_size = check_count("evaluate", "batch_size", 32 if batch_size is None else batch_size)
    steps = check_count("evaluate", "steps", steps, allow_none=True)
    device = model.weights_device()
    keep_freed_memory(device)
    if x is None:
        raise ValueError("evaluate: x (the inputs) is missing; pass evaluate(x, y).")
    if is_array_like(x):
        dtype = input_dtype(model)
        x, y = to_tensors(x, device, dtype=dtype), to_tensors(y, device, "y", dtype)
        sample_weight = to_tensors(sample_weight, device, "sample_weight")
        _check_arrays("evaluate", x, y, sample_weight)
    data = make_batches(x, y, sample_weight, batch_size, False, steps, device)
    _check_against_model(model, *data.peek()[:2])
    dp = distribution_.distribution()  # many processes: each evaluates its slices
    if dp is not None:
        _parallel.check_model(model, batch_size, dp, "evaluate")
        data = _parallel.ShardedBatches(data, dp)
    params = {"steps": data.num_batches, "verbose": verbose}
    logs = _run_evaluation(_Step(model, dp), data, CallbackList(callbacks or [], model, params))
    if return_dict:
        return _sorted(logs)
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
