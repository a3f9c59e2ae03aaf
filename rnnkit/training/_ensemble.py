"""`Ensemble.fit`: models of one architecture trained together, on the same batches.

A seed ensemble is M copies of one network that differ only in their starting weights. Trained
one after another, each pays the whole per-batch overhead of a small model; here one loop
runs them all:

    for each batch (one shuffled pass, the same batches for every member):
        the members' weights stacked along a members axis; one forward pass and one backward
        pass for all of them, each recurrence over members × batch rows in one kernel call
        (`rnnkit.kernels.members`), each Dense layer one batched product
        each member's loss and gradient, its metrics, its optimizer step

Each member keeps its own optimizer (so its learning rate can follow its own
ReduceLROnPlateau), its own callbacks (`member_callbacks`: its own EarlyStopping, with its
best weights restored), its own History and validation scores; a member that stops drops out
of the stack. Every member's numbers are those of training it alone on the same batches, to
float rounding: `tests/test_ensemble.py` trains both ways and compares the weights.

A member a callback stops mid-epoch ends its epoch there, as alone, and the others go on with
theirs. Where the members cannot be stacked (`stack_blocker`: a layer without a members
kernel, a model the direct step cannot run, a GPU), the same loop runs each member's own step
in turn: the same results, without the stacked kernels' speed, except that members with
Dropout draw their masks from one random stream in turn, so not the masks each would draw
alone. `ensemble.step_path` says which ran.
"""

from __future__ import annotations

import copy

import torch

from rnnkit import distribution as distribution_
from rnnkit import losses
from rnnkit.callbacks import (
    BackupAndRestore,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from rnnkit.callbacks._base import CallbackList
from rnnkit.callbacks._progress import progress_logger
from rnnkit.training import _direct, _fit
from rnnkit.training._data import check_count, is_array_like
from rnnkit.training._memory import keep_freed_memory


def fit_ensemble(
    ensemble,
    x=None,
    y=None,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    member_callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    initial_epoch=0,
    sample_weight=None,
    class_weight=None,
):
    """`ensemble.fit(x, y, ...)`: train every member on `(x, y)`, the same shuffled batches
    for all; returns each member's `History`.

    Args:
        x, y, batch_size, epochs, validation_split, validation_data, shuffle, initial_epoch,
            sample_weight, class_weight: as for `Model.fit`, on in-memory arrays.
        verbose: the progress display, for the members' mean logs.
        callbacks: callbacks for the ensemble as a whole (progress, logging): each epoch they
            get the members' logs averaged, and `members`, how many trained that epoch;
            `model.stop_training = True` in one stops every member. Callbacks that watch one
            model (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, ...) go in
            `member_callbacks`; here they raise a TypeError saying so.
        member_callbacks: a function of a member's index returning that member's own
            callbacks, e.g. `lambda i: [EarlyStopping(patience=5, restore_best_weights=True)]`:
            they see the member's model and its logs, and a member they stop drops out while
            the others train on.
    """
    where = "Ensemble.fit"
    members = ensemble.members
    for member in members:
        _fit._check_compiled(member, where)
    batch_size = check_count(where, "batch_size", 32 if batch_size is None else batch_size)
    epochs = check_count(where, "epochs", epochs, minimum=0)
    initial_epoch = check_count(where, "initial_epoch", initial_epoch, minimum=0)
    if member_callbacks is not None and not callable(member_callbacks):
        raise TypeError(
            f"{where}: member_callbacks must be a function of the member's index that returns "
            f"its callbacks, e.g. lambda i: [EarlyStopping(patience=5)]; got "
            f"{type(member_callbacks).__name__}."
        )
    for callback in callbacks or []:
        if isinstance(callback, _PER_MEMBER):
            name = type(callback).__name__
            raise TypeError(
                f"{where}: {name} watches one model's weights, optimizer or file; the "
                "ensemble's `callbacks` hear only the members' mean logs. Give each member "
                f"its own: member_callbacks=lambda i: [{name}(...)]."
            )
    if x is None:
        raise ValueError(f"{where}: x (the inputs) is missing; pass fit(x, y, ...).")
    if not is_array_like(x):
        raise ValueError(
            f"{where}: the ensemble trains on in-memory arrays (numpy, pandas or torch); got "
            f"{type(x).__name__}. Fit each member on its own for a generator or Dataset."
        )
    if distribution_.distribution() is not None:  # across processes: each member's own fit
        ensemble.step_path = "each member's own fit in turn (data-parallel)"
        return [
            member.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=0,
                callbacks=_own(member_callbacks, i) + [copy.copy(c) for c in callbacks or []],
                validation_split=validation_split,
                validation_data=validation_data,
                shuffle=shuffle,
                initial_epoch=initial_epoch,
                sample_weight=sample_weight,
                class_weight=class_weight,
            )
            for i, member in enumerate(members)
        ]
    _fit._check_validation_split(where, validation_split, x)
    first = members[0]
    device = first.weights_device()
    keep_freed_memory(device)
    split = validation_split if validation_data is None else 0.0
    data, held_out = _fit._training_batches(
        first, x, y, sample_weight, class_weight, split, batch_size, shuffle, None, device
    )
    validation_data = held_out if validation_data is None else validation_data
    val_data = _fit._validation_batches(first, validation_data, batch_size, None, device)
    for member in members:  # builds each, and checks the data against it
        _fit._check_against_model(member, *data.peek()[:2])
    steps = [_fit._Step(member) for member in members]
    for member, step in zip(members, steps):
        if step.trains:
            member.optimizer.build(member.trainable_weights)
    params = {"epochs": epochs, "steps": data.num_batches, "verbose": 0, "batch_size": batch_size}
    lists = []
    for i, member in enumerate(members):
        lists.append(_fit._fit_callbacks(member, _own(member_callbacks, i), 0, params))
        member.stop_training = False
        member.initial_epoch = initial_epoch
    shown = [c for c in [progress_logger(verbose)] if c is not None]
    overall = CallbackList(list(callbacks or []) + shown, ensemble, {**params, "verbose": verbose})
    why = stack_blocker(members, steps, data)
    ensemble.step_path = (
        f"stacked ({len(members)} members in each kernel call)"
        if why is None
        else f"each member's own step in turn ({why})"
    )
    ensemble.stop_training = False
    # each member's own step, where they are not stacked (the direct step where it can)
    own = None if why is None else [_fit._direct_step(m, s, data) for m, s in zip(members, steps)]
    try:
        _train(ensemble, members, steps, lists, overall, data, val_data, epochs, initial_epoch, own)
    except BaseException:
        for callback_list in [*lists, overall]:
            callback_list.interrupted()
        raise
    return [member.history for member in members]


# callbacks that watch one model: each member gets its own (`member_callbacks`)
_PER_MEMBER = (
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    LearningRateScheduler,
    BackupAndRestore,
    TerminateOnNaN,
)


def _own(member_callbacks, i) -> list:
    """Member `i`'s own callbacks."""
    return list(member_callbacks(i)) if member_callbacks is not None else []


def _train(ensemble, members, steps, lists, overall, data, val_data, epochs, initial_epoch, own):
    for callback_list in [*lists, overall]:
        callback_list.on_train_begin()
    active = [i for i in range(len(members)) if steps[i].trains]
    for epoch in range(initial_epoch, epochs):
        if not active or ensemble.stop_training:
            break
        overall.on_epoch_begin(epoch)
        for i in active:
            steps[i].reset()
            lists[i].on_epoch_begin(epoch)
        every = []  # the logs of each member's epoch, as each ends it

        def end_epoch(i, epoch=epoch, every=every):  # as the member's own fit ends an epoch
            logs = steps[i].logs()
            if val_data is not None:
                val_logs = _fit._run_evaluation(steps[i], val_data, lists[i])
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            logs = _fit._sorted(logs)
            lists[i].on_epoch_end(epoch, logs)
            every.append(logs)

        running = list(active)  # the members still in this epoch
        stack = StackedStep([members[i] for i in running]) if own is None else None
        for batch, (xb, yb, wb) in enumerate(data):
            overall.on_train_batch_begin(batch)
            for i in running:
                lists[i].on_train_batch_begin(batch)
            if stack is not None:
                results = stack.run(xb, yb, wb)
                for i, (loss, y_pred) in zip(running, results):
                    steps[i].track(xb, yb, wb, loss, y_pred, None)
                    _update(members[i], steps[i])
            else:
                for i in running:
                    _fit._train_step(members[i], steps[i], own[i], xb, yb, wb)
            for i in running:
                logs = _fit._sorted(steps[i].logs()) if lists[i].wants_batch_logs else None
                lists[i].on_train_batch_end(batch, logs)
            overall.on_train_batch_end(batch, None)
            stopped = [i for i in running if members[i].stop_training]
            if stopped:  # those end their epoch now, as alone; the others train on
                for i in stopped:
                    end_epoch(i)
                running = [i for i in running if i not in stopped]
                if not running:
                    break
                if stack is not None:
                    stack = StackedStep([members[i] for i in running])
        for i in running:
            end_epoch(i)
        overall.on_epoch_end(epoch, _mean_logs(every))
        active = [i for i in active if not members[i].stop_training]
    for callback_list in [*lists, overall]:
        callback_list.on_train_end({})


def _update(member, step):
    member.optimizer.step()
    if step.constrained:
        member.apply_constraints()


def _mean_logs(every: list[dict]) -> dict:
    """The members' logs averaged key by key (each over the members that have it), with how
    many trained this epoch."""
    keys = list(dict.fromkeys(key for logs in every for key in logs))
    means = {}
    for key in keys:
        values = [logs[key] for logs in every if key in logs]
        means[key] = sum(values) / len(values)
    return {**means, "members": len(every)}


# ----------------------------------------------------------------------- stacked step


def stack_blocker(members, steps, data) -> str | None:
    """Why the members cannot train stacked (None: they can)."""
    first = members[0]
    for member, step in zip(members, steps):
        why = _direct.blocker(member, step, data)
        if why is not None:
            return why
    kinds = [type(layer).__name__ for layer in first.layers]
    for member in members[1:]:
        if [type(layer).__name__ for layer in member.layers] != kinds:
            return "the members' layers differ"
        for a, b in zip(first.layers, member.layers):
            if _shape_config(a) != _shape_config(b):
                return f"the members' {type(a).__name__} layers differ"
        if type(member.loss) is not type(first.loss) or member.loss.get_config() != (
            first.loss.get_config()
        ):
            return "the members' losses differ"
    for layer in first.layers:
        why = layer.stacked_blocker()
        if why is not None:
            return why
    return None


def _shape_config(layer) -> dict:
    config = layer.get_config()
    config.pop("name", None)
    return config


class StackedStep:
    """One batch for every member at once: `[(loss, y_pred) per member]`, each member's
    gradients in its weights' `.grad`."""

    def __init__(self, members):
        self.members = members
        self.count = len(members)
        self.loss = members[0].loss
        self.layers = list(zip(*(member.layers for member in members)))  # per layer, members'
        # every weight's gradient is cleared each batch: one frozen since still holds a .grad
        self.weights = [w for member in members for w in member.parameters()]

    def run(self, x, y, sample_weight):
        count = self.count
        for weight in self.weights:
            weight.grad = None
        backward_passes = []
        with torch.no_grad():
            out = self.members[0]._convert_inputs(x)
            out = out.repeat(count, *([1] * (out.dim() - 1)))  # (M*B, ...), member-major rows
            for i, layer_of in enumerate(self.layers):
                out = layer_of[0]._convert_inputs(out)
                out, backward = type(layer_of[0]).stacked_call(layer_of, out, i > 0)
                backward_passes.append(backward)
            predictions = out.chunk(count)
            results, grads = [], []
            for y_pred in predictions:
                loss, grad = losses.value_and_gradient(self.loss, y, y_pred, sample_weight)
                results.append((loss, y_pred))
                grads.append(grad)
            grad = torch.cat(grads)
            for backward in reversed(backward_passes):
                grad = backward(grad)
        return results
