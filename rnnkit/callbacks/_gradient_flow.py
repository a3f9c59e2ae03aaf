"""`GradientFlow`: watch, while training, whether the gradient vanishes or explodes in time."""

from __future__ import annotations

import numbers
import warnings

from rnnkit.callbacks._base import Callback


class GradientFlow(Callback):
    """Measure the gradient flow through each recurrent layer every `every` epochs, keep it in
    the History, and warn once when it vanishes or explodes.

    After every `every`-th epoch, `rnnkit.explain.gradient_flow(model, x, y)` gives each
    layer's decay `‖∂L/∂h_1‖ / ‖∂L/∂h_T‖`, the factor by which the loss's gradient shrinks
    (below 1) or grows (above 1) going back from the last step to the first. It goes into the
    epoch's logs as `gradient_decay/<layer>` (so `history.history` keeps it, for the epochs
    measured) and into `self.flows[epoch]` (the whole `Flow`).

    Args:
        x, y: a batch to measure on, e.g. 32 sequences of the training data.
        every: measure after every `every`-th epoch.
        vanish_below: warn when a layer's decay falls below this (1e-4).
        explode_above: warn when it rises above this (1e4).
        loss: the loss to differentiate; None: the model's compiled loss.

    The thresholds: the weights' gradient is a sum over steps, step 1's term `decay` times
    step T's. Below 1e-4 the first steps add less than the fourth significant digit of an
    update, so what depends on them cannot be learned; above 1e4 the oldest steps swamp the
    update and training overshoots, where clipping helps. (See
    `rnnkit.explain.gradients.VANISH_BELOW`.) Layers read at every step (`return_sequences`)
    are recorded but not judged: their gradient enters at every step.

    Example:
        >>> import numpy as np
        >>> from rnnkit import Input, Sequential
        >>> from rnnkit.layers import Dense, SimpleRNN
        >>> model = Sequential([Input((30, 1)), SimpleRNN(4, name="rnn"), Dense(1)])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> x, y = np.random.rand(32, 30, 1), np.random.rand(32, 1)
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[GradientFlow(x, y)])
        >>> len(history.history["gradient_decay/rnn"])
        2
    """

    def __init__(self, x, y, every=1, vanish_below=1e-4, explode_above=1e4, loss=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(
                f"GradientFlow: every is a number of epochs and must be an integer >= 1; got "
                f"{every!r}. every=5 measures after epochs 5, 10, ..."
            )
        for name, value in (("vanish_below", vanish_below), ("explode_above", explode_above)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
                raise ValueError(
                    f"GradientFlow: {name} is a factor and must be a number > 0; got {value!r}."
                )
        if not vanish_below < explode_above:
            raise ValueError(
                f"GradientFlow: vanish_below ({vanish_below}) must be below explode_above "
                f"({explode_above}); the defaults are 1e-4 and 1e4."
            )
        self.x, self.y, self.loss = x, y, loss
        self.every = int(every)
        self.vanish_below, self.explode_above = float(vanish_below), float(explode_above)
        self.flows: dict = {}  # epoch -> Flow
        self._warned = False

    def on_train_begin(self, logs=None):
        self._warned = False  # once per fit

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        # Imported here: rnnkit.explain imports the layers and models, which import callbacks.
        from rnnkit.explain.gradients import gradient_flow

        flow = gradient_flow(self.model, self.x, self.y, loss=self.loss)
        self.flows[epoch] = flow
        if logs is not None:
            logs.update({f"gradient_decay/{name}": d for name, d in flow.decay.items()})
        message = None if self._warned else self._trouble(epoch, flow)
        if message:
            self._warned = True
            # stacklevel 5: on_epoch_end, CallbackList, fit's epoch loop, fit: fit's caller
            warnings.warn(message, RuntimeWarning, stacklevel=5)

    def _trouble(self, epoch, flow) -> str | None:
        """The warning for the layers whose gradient vanishes or explodes (None: none)."""
        health = flow.health(self.vanish_below, self.explode_above)
        lines = []
        for name, verdict in health.items():
            decay, steps = flow.decay[name], len(flow.norms[name])
            if verdict == "vanishing":
                gated = flow.kinds[name] in ("LSTM", "GRU")
                fix = (
                    "its gates have closed the path: the model is not using the early steps"
                    if gated
                    else "an LSTM or GRU layer keeps the gradient alive over long sequences"
                )
                lines.append(
                    f"the gradient vanishes going back through '{name}' ({flow.kinds[name]}): "
                    f"‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {decay:.1e} over {steps} steps, below "
                    f"{self.vanish_below:.0e}, so the first steps hardly train it; {fix}."
                )
            elif verdict == "exploding":
                lines.append(
                    f"the gradient explodes going back through '{name}' ({flow.kinds[name]}): "
                    f"‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {decay:.1e} over {steps} steps, above "
                    f"{self.explode_above:.0e}. Clip it, e.g. "
                    "optimizer=rnnkit.optimizers.Adam(clipnorm=1.0), or use an LSTM or GRU layer."
                )
        if not lines:
            return None
        return f"GradientFlow, after epoch {epoch + 1}: " + " Also, ".join(lines)
