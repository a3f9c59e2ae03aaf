"""The network a forecast trains, how it trains, and how it forecasts.

    window (window, features) --> SimpleRNN / LSTM / GRU --+
    future covariates at the target rows (horizon, F) -----+--> Dense(horizon)
    static columns: text -> Embedding, numbers ------------+

Without future or static columns it is `Sequential([Input, cell, Dense(horizon)])`. Two
strategies reach `horizon` steps ahead: *direct* trains one output per step; *recursive*
trains one step and feeds each forecast back as the next row (so every input other than
the target must be known ahead). Several members trained from different seeds are
averaged into one model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnkit.forecast.data import Panel
from rnnkit.forecast.settings import ForecastSettings
from rnnkit.forecast.windows import Windows

EMBEDDING_SIZE = 4  # per text static column: a few numbers place a store or a product type


# ------------------------------------------------------------------------------ static


def static_encoding(panel: Panel) -> dict:
    """How the static columns enter the network (saved with the model): each text column's
    vocabulary (code 0 is a value not seen in training) and each numeric one's mean and
    spread across series."""
    if panel.static is None:
        return {"text": {}, "numbers": {}}
    text, numbers = {}, {}
    for column in panel.static.columns:
        values = panel.static[column]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            spread = float(numeric.std(ddof=0)) or 1.0
            numbers[column] = [float(numeric.mean()), spread]
        else:
            text[column] = sorted(str(v) for v in values.unique())
    return {"text": text, "numbers": numbers}


def static_arrays(static: pd.DataFrame | None, encoding: dict):
    """`(codes, numbers)`, one row per series: text columns as codes, numbers standardised
    (each None when there are no such columns)."""
    codes = numbers = None
    if encoding["text"]:
        offset, columns = 1, []
        for column, vocabulary in encoding["text"].items():
            lookup = {word: offset + i for i, word in enumerate(vocabulary)}
            columns.append([lookup.get(str(v), 0) for v in static[column]])
            offset += len(vocabulary)
        codes = np.array(columns, dtype=np.int64).T  # (series, text columns)
    if encoding["numbers"]:
        columns = [
            (pd.to_numeric(static[c]).to_numpy(np.float64) - mean) / spread
            for c, (mean, spread) in encoding["numbers"].items()
        ]
        numbers = np.array(columns, dtype=np.float32).T  # (series, numeric columns)
    return codes, numbers


# ----------------------------------------------------------------------------- network


def build_network(
    settings: ForecastSettings,
    features: int,
    outputs: int,
    future: int = 0,
    encoding: dict | None = None,
    name: str = "forecast",
):
    """One member: the recurrent layer over the window, joined by the future and static
    inputs (if any) before the `Dense(outputs)` that gives one value per step ahead."""
    from rnnkit import Input, Model, Sequential
    from rnnkit.layers import GRU, LSTM, Concatenate, Dense, Embedding, Flatten, SimpleRNN
    from rnnkit.optimizers import Adam

    cell = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[settings.cell]
    encoding = encoding or {"text": {}, "numbers": {}}
    text, numbers = encoding["text"], encoding["numbers"]
    if not future and not text and not numbers:
        model = Sequential(
            [Input((settings.window, features)), cell(settings.units), Dense(outputs)],
            name=name,
        )
    else:
        window = Input((settings.window, features), name="window")
        inputs, joined = [window], [cell(settings.units)(window)]
        if future:
            ahead = Input((outputs * future,), name="future")
            inputs.append(ahead)
            joined.append(ahead)
        if text:
            codes = Input((len(text),), dtype="int64", name="static_text")
            vocabulary = 1 + sum(len(v) for v in text.values())
            inputs.append(codes)
            joined.append(Flatten()(Embedding(vocabulary, EMBEDDING_SIZE)(codes)))
        if numbers:
            values = Input((len(numbers),), name="static_numbers")
            inputs.append(values)
            joined.append(values)
        model = Model(inputs, Dense(outputs)(Concatenate()(joined)), name=name)
    model.compile(optimizer=Adam(settings.learning_rate), loss=settings.loss)
    return model


def train(
    train_windows: Windows,
    val_windows: Windows,
    settings: ForecastSettings,
    encoding: dict,
    callbacks=(),
    summary=None,
    on_member=None,
):
    """Train `settings.ensemble` members from seeds `seed, seed + 1, ...` and average them.

    The members train together (`rnnkit.models.Ensemble`), on the same batches. Each one's
    early stopping watches the validation windows (restoring its best weights) when there
    are any; without them each member trains for `settings.epochs`. `callbacks` hear the
    members' mean logs; `on_member(count, seeds)` is called once, before training.

    Returns:
        `(model, histories)`.
    """
    from rnnkit.callbacks import EarlyStopping, ReduceLROnPlateau
    from rnnkit.models import Ensemble
    from rnnkit.utils import set_random_seed

    features = train_windows.x.shape[2]
    outputs = train_windows.y.shape[1]
    future = 0 if train_windows.ahead is None else train_windows.ahead.shape[2]
    validate = len(val_windows) > 0
    monitor = "val_loss" if validate else "loss"
    members = []
    for member in range(settings.ensemble):
        set_random_seed(settings.seed + member)
        name = f"forecast_{settings.cell}" + (f"_{member + 1}" if settings.ensemble > 1 else "")
        members.append(build_network(settings, features, outputs, future, encoding, name))
    if summary is not None:
        summary(members[0])
    if on_member is not None:
        on_member(settings.ensemble, [settings.seed + m for m in range(settings.ensemble)])

    def watch(member):  # each member's own: its learning rate, its stop, its best weights
        own = [ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=4)]
        if validate:
            own.append(EarlyStopping(patience=settings.patience, restore_best_weights=True))
        return own

    set_random_seed(settings.seed)  # the batches' order: one shuffle for every member
    ensemble = Ensemble(members)
    fitted = ensemble.fit(
        train_windows.model_inputs(),
        train_windows.y,
        validation_data=(val_windows.model_inputs(), val_windows.y) if validate else None,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        callbacks=list(callbacks),
        member_callbacks=watch,
        verbose=0,
    )
    histories = [history.history for history in fitted]
    if len(members) == 1:
        return members[0], histories
    return ensemble.as_model(f"forecast_{settings.cell}_ensemble"), histories


# ---------------------------------------------------------------------------- forecast


def forecast_scaled(
    model, windows: Windows, settings: ForecastSettings, target_index=-1, ahead_rows=None
):
    """The forecasts of `windows` in scaled units, `(n, horizon)`: the level, not the change.

    Args:
        target_index: for the recursive strategy, the target's column among the inputs.
        ahead_rows: for the recursive strategy, `(n, horizon, features)` the scaled input
            rows at the forecast steps, whose target column is overwritten by each forecast
            as it is made (the other columns must be known ahead: future covariates and
            the calendar).
    """
    if len(windows) == 0:
        return np.zeros((0, settings.horizon))
    if settings.strategy == "direct":
        output = model.predict(windows.model_inputs(), batch_size=1024, verbose=0)
        output = np.asarray(output, dtype=np.float64)
        return output + windows.base[:, None] if settings.predict_change else output
    return _recursive(model, windows, settings, target_index, ahead_rows)


def _recursive(model, windows: Windows, settings: ForecastSettings, target, ahead_rows):
    x, base = windows.x.copy(), windows.base.astype(np.float64)
    levels = []
    for k in range(settings.horizon):
        step = Windows(
            x, windows.y[:, :1], windows.truth[:, :1], windows.series, windows.first, base
        )
        step.codes, step.numbers = windows.codes, windows.numbers
        step.relative = windows.relative
        if windows.ahead is not None:
            step.ahead = windows.ahead[:, k : k + 1]
        output = np.asarray(model.predict(step.model_inputs(), batch_size=1024, verbose=0))
        level = output[:, 0] + base if settings.predict_change else output[:, 0]
        levels.append(level)
        row = ahead_rows[:, k].copy()  # (n, features): known ahead, but the target
        row[:, target] = level
        x = np.concatenate([x[:, 1:], row[:, None].astype(x.dtype)], axis=1)
        base = level
    return np.stack(levels, axis=1)  # (n, horizon)
