"""`Callback`: hooks into `fit`, and `History`, the callback that records each epoch.

The hooks, in the order `fit` calls them:

    on_train_begin
      on_epoch_begin(epoch)
        on_train_batch_begin(batch) / on_train_batch_end(batch, logs)   # each batch
        on_test_begin / on_test_end(logs)                               # validation
      on_epoch_end(epoch, logs)       # logs: {"loss": ..., "accuracy": ..., "val_loss": ...}
    on_train_end

A callback can stop training by setting `self.model.stop_training = True`.
"""

from __future__ import annotations

from rnnkit import distribution


class Callback:
    """Base class: override the hooks you need; `self.model` and `self.params` are set by fit.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(f"epoch {epoch}: loss {logs['loss']:.3f}")
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...

    def on_test_begin(self, logs=None): ...

    def on_test_end(self, logs=None): ...

    def on_test_batch_begin(self, batch, logs=None): ...

    def on_test_batch_end(self, batch, logs=None): ...

    def on_predict_begin(self, logs=None): ...

    def on_predict_end(self, logs=None): ...

    def _say(self, message: str) -> None:
        """A `verbose=1` message, printed by one process only (rank 0 under
        `rnnkit.distribution`), as the progress bar is."""
        if distribution.is_writer():
            print(message, flush=True)

    def _on_interrupt(self) -> None:
        """fit was stopped by an exception (Ctrl-C, an error in a hook): let go of what the
        callback holds open (a live display, a file). Not `on_train_end`, whose work (restore
        the best weights, delete the backup to resume from) belongs to a finished run."""


class History(Callback):
    """What `fit` returns: `history.history["loss"]` lists the loss of every epoch."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"<History epochs={len(self.epoch)} keys={sorted(self.history)}>"


class CallbackList:
    """Calls the same hook on every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must be rnnkit Callback instances (e.g. EarlyStopping(), or a "
                    f"subclass of rnnkit.callbacks.Callback); got {callback!r}."
                )
            callback.set_model(model)
            callback.set_params(params)
        # Per-batch logs cost a device sync per metric; only compute them when someone reads them.
        # Hooks set on the instance count too (LambdaCallback, ModelCheckpoint(save_freq=N)).
        self.wants_batch_logs = any(
            type(c).on_train_batch_end is not Callback.on_train_batch_end
            or "on_train_batch_end" in vars(c)
            for c in self.callbacks
        )

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        # Keras passes `logs` to every hook, positionally (None when there are none), so
        # `LambdaCallback(on_epoch_begin=lambda epoch, logs: ...)` works as documented.
        arity = 2 if "epoch" in hook or "batch" in hook else 1  # (epoch or batch, logs)

        # Only the callbacks that do something on this hook are called: fit calls two hooks
        # every batch, and most callbacks only listen at the epochs' ends.
        listening = [
            getattr(c, hook)
            for c in self.callbacks
            if getattr(type(c), hook, None) is not getattr(Callback, hook, None)
            or hook in vars(c)
            or not hasattr(Callback, hook)
        ]

        def call(*args, logs=None):
            if len(args) < arity:
                args = (*args, logs)
            for method in listening:
                method(*args)

        self.__dict__[hook] = call  # found directly next time
        return call

    def interrupted(self) -> None:
        """fit was stopped by an exception: every callback lets go of what it holds open."""
        for callback in self.callbacks:
            callback._on_interrupt()
