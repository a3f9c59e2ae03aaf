"""Design experiments for `rnnkit bench m3`: one global recurrent model per M3 frequency.

    python benchmarks/m3_design.py --frequency monthly --series 300 [--window 24] [--cell gru]
        [--units 32] [--loss mae] [--lr 3e-3] [--batch 512] [--epochs 40] [--patience 10]
        [--ensemble 5] [--norm log] [--deseason true] [--policy calibrate] [--short pad]
    python benchmarks/m3_design.py --frequency all --baselines --combine --json out.json

One model is trained across all the chosen series of a frequency (each frequency starts from
its settings in DEFAULTS; the options override them) and scored on the competition's test
part with sMAPE and MASE, beside seasonal naive and, with `--baselines`, statsforecast's
Theta and AutoETS on the same split (`--combine` adds the mean of the RNN and Theta).
A series' score is its mean over the horizon. The table's "all" is the mean over series;
"pooled" weighs each series by its horizon, i.e. the mean over every forecast point, the
convention of the published M3 figures (statsforecast's Theta: 13.04 pooled, 12.76 "all";
published 13.01).

Windows: `window` rows of one series, never crossing into another; the target is the next
`horizon` rows (direct multi-output). Normalisation (`--norm`):
  std   each series standardised on its training rows (rnnkit forecast's scaler);
  last  the window and target divided by the window's last value, minus 1;
  mean  divided by the window's mean;
  log   log values minus the window's last log value (a relative error, as sMAPE is).
With `--change` (std and mean only) the target is the change from the window's last value;
last and log are changes by construction. `--deseason` first divides each seasonal series
by classical multiplicative seasonal indices and multiplies the forecast back.
Series shorter than `window` rows: `--short pad` left-pads the window with zeros and a 0/1
"observed" feature, which `Masking` hides from the recurrence; `--short none` leaves them out
of training and pads with the first value to forecast them.

Validation (`--policy`, see `ensemble_members`): the held-out rows are each series' last
`horizon` training rows, forecast from the window before them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnkit.datasets.m3 import HORIZONS, m3  # noqa: E402
from rnnkit.forecast import baselines, metrics, seasonal  # noqa: E402

FREQUENCIES = tuple(HORIZONS)
CHOICES = {
    "cell": ("simple_rnn", "lstm", "gru"),
    "norm": ("std", "last", "mean", "log"),
    "policy": ("fixed", "early", "refit", "calibrate"),
    "short": ("pad", "none"),
}


@dataclass
class Design:
    """One frequency's model and training settings; the per-frequency choices are DEFAULTS.

    The reasons are the experiments in benchmarks/M3_DESIGN.md.
    """

    window: int = 12  # rows the model sees; per frequency in DEFAULTS
    cell: str = "gru"  # LSTM was no better on monthly and worse on quarterly; GRU is faster
    units: int = 32  # 16 and 64 were both worse on monthly and quarterly
    loss: str = "mae"  # MAE of a log ratio is a relative error, as sMAPE is
    lr: float = 3e-3  # beat 1e-3 on every frequency (quarterly 9.41 vs 9.76)
    batch: int = 256
    epochs: int = 40  # the bound for the calibration run's early stopping
    patience: int = 10  # 5 let one noisy validation score stop a run after 1 epoch
    ensemble: int = 5  # members from consecutive seeds, forecasts averaged
    norm: str = "log"  # log minus the window's last log value; series std was far worse
    change: bool = False  # predict the change from the last value (std and mean only)
    policy: str = "calibrate"  # as good as refit per member, at about half the training
    short: str = "pad"  # short histories still give training windows (yearly n >= 14)
    min_rows: int = 3  # a padded training window needs this many observed rows
    max_windows: int = 0  # the most recent windows kept per series; 0 keeps all
    deseason: bool = False  # divide out classical multiplicative seasonal indices first


DEFAULTS = {
    # window: 6 and 20 were worse; refit: over three seeds 16.00 vs calibrate's 16.16, and
    # yearly trains in seconds
    "yearly": Design(window=12, policy="refit"),
    "quarterly": Design(window=8, deseason=True),  # two years; 12, 16 and 24 were worse
    "monthly": Design(window=24, batch=512, deseason=True),  # 24, 36, 48 alike: 24 is cheapest
    "other": Design(window=16),  # 8 was worse, 24 no better
}


# -- windows ------------------------------------------------------------------------------


def _scaled(values: np.ndarray, design: Design) -> tuple[np.ndarray, float, float]:
    """The series in the model's units before per-window scaling: (values, shift, scale)."""
    if design.norm == "std":
        shift, scale = float(values.mean()), float(values.std()) or 1.0
        return (values - shift) / scale, shift, scale
    if design.norm == "log":
        return np.log(values), 0.0, 1.0
    return values, 0.0, 1.0


def _window_frame(past: np.ndarray, design: Design) -> tuple[np.ndarray, float, float]:
    """A window's inputs and its (offset, divisor): model units = (value - offset) / divisor."""
    if design.norm == "last":
        return past / past[-1] - 1.0, 1.0 * past[-1], past[-1]
    if design.norm == "mean":
        level = past.mean()
        offset = past[-1] / level if design.change else 0.0
        return past / level, offset * level, level
    if design.norm == "log":
        return past - past[-1], past[-1], 1.0
    return past, (past[-1] if design.change else 0.0), 1.0


def window_at(z: np.ndarray, end: int, design: Design):
    """The window of rows before `end`: (window, 2) inputs, its offset and divisor.

    Feature 0 is the scaled value, feature 1 is 1 where a row is observed. Under
    `short="pad"` a short window is left-padded with zeros (masked); otherwise with its
    first value, marked observed.
    """
    past = z[max(0, end - design.window) : end]
    if len(past) < design.window and design.short != "pad":
        past = np.concatenate([np.full(design.window - len(past), past[0]), past])
    framed, offset, divisor = _window_frame(past, design)
    x = np.zeros((design.window, 2), np.float32)  # (window, features)
    x[-len(past) :, 0] = framed
    x[-len(past) :, 1] = 1.0
    return x, offset, divisor


def make_windows(series: list[np.ndarray], horizon: int, design: Design, holdout: int):
    """Training windows of every series, their targets ending `holdout` rows before its end.

    Returns x (n, window, 2) and y (n, horizon), in the model's units.
    """
    xs, ys = [], []
    first = design.min_rows if design.short == "pad" else design.window
    for values in series:
        z, _, _ = _scaled(values, design)
        ends = range(first, len(z) - holdout - horizon + 1)
        if design.max_windows:
            ends = ends[-design.max_windows :]
        for end in ends:
            x, offset, divisor = window_at(z, end, design)
            xs.append(x)
            ys.append((z[end : end + horizon] - offset) / divisor)
    return np.stack(xs), np.asarray(ys, np.float32)


def last_windows(series: list[np.ndarray], horizon: int, design: Design, holdout: int):
    """One window per series ending `holdout` rows before its end: inputs, targets (when
    `holdout` covers them; else None) and the (shift, scale, offset, divisor) to undo."""
    xs, ys, undo = [], [], []
    for values in series:
        z, shift, scale = _scaled(values, design)
        end = len(z) - holdout
        x, offset, divisor = window_at(z, end, design)
        xs.append(x)
        undo.append((shift, scale, offset, divisor))
        if holdout >= horizon:
            ys.append((z[end : end + horizon] - offset) / divisor)
    return np.stack(xs), (np.asarray(ys, np.float32) if ys else None), undo


def to_values(output: np.ndarray, undo, design: Design) -> np.ndarray:
    """Model outputs (n, horizon) back to the series' own units."""
    rows = []
    for out, (shift, scale, offset, divisor) in zip(output, undo):
        z = out * divisor + offset
        rows.append(np.exp(z) if design.norm == "log" else z * scale + shift)
    return np.asarray(rows)


# -- model --------------------------------------------------------------------------------


def build(design: Design, horizon: int):
    """Masking -> recurrent cell -> Dense(horizon), compiled with Adam and `design.loss`."""
    from rnnkit import Input, Sequential
    from rnnkit.layers import GRU, LSTM, Dense, Masking, SimpleRNN
    from rnnkit.optimizers import Adam

    cell = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[design.cell]
    model = Sequential(
        [Input((design.window, 2)), Masking(0.0), cell(design.units), Dense(horizon)]
    )
    model.compile(optimizer=Adam(design.lr), loss=design.loss)
    return model


def fit_fixed(design: Design, data, horizon: int, seed: int, epochs: int):
    """A fresh model trained on `data` = (x, y) for `epochs` epochs, no validation."""
    from rnnkit.utils import set_random_seed

    set_random_seed(seed)
    model = build(design, horizon)
    model.fit(*data, epochs=epochs, batch_size=design.batch, verbose=0)
    return model


def fit_early(design: Design, data, validation, horizon: int, seed: int):
    """A fresh model early-stopped on `validation`; returns it and its best epoch count."""
    from rnnkit.callbacks import EarlyStopping
    from rnnkit.utils import set_random_seed

    set_random_seed(seed)
    model = build(design, horizon)
    stop = EarlyStopping(patience=design.patience, restore_best_weights=True)
    history = model.fit(
        *data,
        validation_data=validation,
        epochs=design.epochs,
        batch_size=design.batch,
        callbacks=[stop],
        verbose=0,
    )
    return model, int(np.argmin(history.history["val_loss"])) + 1


def ensemble_members(design: Design, series, horizon: int, seed: int):
    """The trained members and the epochs each trained, under `design.policy`:

    fixed      every member trains on all windows for `design.epochs`;
    early      every member early-stops on the held-out last `horizon` rows;
    refit      every member early-stops, then a fresh one trains on all windows that long;
    calibrate  one early-stopped run picks the epoch count, every member trains that long
               on all windows (one validation run instead of one per member).
    """
    full = make_windows(series, horizon, design, holdout=0)
    if design.policy == "fixed":
        seeds = range(seed, seed + design.ensemble)
        return [fit_fixed(design, full, horizon, s, design.epochs) for s in seeds], [
            design.epochs
        ] * design.ensemble
    held = make_windows(series, horizon, design, holdout=horizon)
    x_val, y_val, _ = last_windows(series, horizon, design, holdout=horizon)
    members, epochs = [], []
    for member in range(design.ensemble):
        if design.policy == "calibrate" and member > 0:
            best = epochs[0]
        else:
            model, best = fit_early(design, held, (x_val, y_val), horizon, seed + member)
        if design.policy != "early":
            model = fit_fixed(design, full, horizon, seed + member, best)
        members.append(model)
        epochs.append(best)
    return members, epochs


def rnn_forecast(design: Design, series, horizon: int, seed: int, season: int = 1):
    """The ensemble's forecast (n_series, horizon), mean over members; and epochs trained."""
    factors = None
    if design.deseason and season > 1:
        indices = [seasonal.indices(v, season) for v in series]
        series = [v / i[np.arange(len(v)) % season] for v, i in zip(series, indices)]
        factors = np.stack(
            [i[(len(v) + np.arange(horizon)) % season] for v, i in zip(series, indices)]
        )
    x, _, undo = last_windows(series, horizon, design, holdout=0)
    members, epochs = ensemble_members(design, series, horizon, seed)
    forecasts = [to_values(m.predict(x, batch_size=1024), undo, design) for m in members]
    forecast = np.mean(forecasts, axis=0)
    return (forecast if factors is None else forecast * factors), epochs


# -- runs ---------------------------------------------------------------------------------


def run_frequency(frequency: str, design: Design, args) -> dict:
    """Train and score one frequency; returns per-method mean sMAPE, MASE and per-series arrays."""
    competition = m3(frequency, series=args.series, seed=args.sample_seed)
    ids = competition.train["unique_id"].unique()
    series = [g.to_numpy() for _, g in competition.train.groupby("unique_id", sort=True)["y"]]
    truth = competition.test.sort_values(["unique_id", "ds"])["y"].to_numpy()
    truth = truth.reshape(len(ids), competition.horizon)
    h, season = competition.horizon, competition.season

    forecasts, seconds = {}, {}
    started = time.perf_counter()
    forecasts["rnn"], epochs = rnn_forecast(design, series, h, args.seed, season)
    seconds["rnn"] = time.perf_counter() - started
    forecasts["seasonal_naive"] = baselines.seasonal_naive_many(series, h, season)
    if args.baselines:
        found = baselines.statistical(dict(zip(ids, series)), h, season)
        forecasts.update(found.forecasts)
        seconds.update(found.seconds)
    if args.combine and "Theta" in forecasts:
        forecasts["rnn+Theta"] = (forecasts["rnn"] + forecasts["Theta"]) / 2
    scores = {
        name: {
            "smape": metrics.smape(truth, f).tolist(),
            "mase": metrics.mase(truth, f, series, season).tolist(),
        }
        for name, f in forecasts.items()
    }
    return {
        "frequency": frequency,
        "series": len(ids),
        "design": asdict(design),
        "epochs": epochs,
        "seconds": seconds,
        "scores": scores,
    }


def _summary(results: list[dict]) -> str:
    """A markdown table of sMAPE / MASE per method and frequency, and over all series run.

    "all" averages the series (each series' horizon mean, then the mean over series);
    "pooled" averages every forecast point, so a monthly series weighs 18 and a yearly 6:
    the published M3 figures (Theta 13.01) are pooled.
    """
    methods = list(results[0]["scores"])
    head = "| method | " + " | ".join(r["frequency"] for r in results) + " | all | pooled |"
    lines = [head, "|" + "---|" * (len(results) + 3)]
    weights = np.concatenate([[HORIZONS[r["frequency"]]] * r["series"] for r in results])
    for method in methods:
        cells = [
            f"{np.mean(r['scores'][method]['smape']):.2f} / "
            f"{np.mean(r['scores'][method]['mase']):.2f}"
            for r in results
        ]
        every = {
            key: np.concatenate([r["scores"][method][key] for r in results])
            for key in ("smape", "mase")
        }
        cells.append(f"{every['smape'].mean():.2f} / {every['mase'].mean():.2f}")
        pooled = [np.average(every[key], weights=weights) for key in ("smape", "mase")]
        cells.append(f"{pooled[0]:.2f} / {pooled[1]:.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    times = ", ".join(
        f"{r['frequency']}: " + " ".join(f"{k} {v:.0f}s" for k, v in r["seconds"].items())
        for r in results
    )
    epochs = ", ".join(f"{r['frequency']}: {r['epochs']}" for r in results)
    return "\n".join(lines) + f"\n\nseconds: {times}\nepochs: {epochs}"


def main(argv=None) -> None:
    """Parse the options, run the frequencies, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frequency", default="all", choices=(*FREQUENCIES, "all"))
    parser.add_argument("--series", type=int, default=None, help="a sample per frequency")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="the first member's seed")
    parser.add_argument("--baselines", action="store_true", help="Theta and AutoETS too")
    parser.add_argument("--combine", action="store_true", help="score the rnn+Theta mean")
    parser.add_argument("--json", help="write every per-series score here")
    for name, default in asdict(Design()).items():
        flag = "--" + name.replace("_", "-")
        if name in CHOICES:
            parser.add_argument(flag, choices=CHOICES[name])
        elif isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "yes", "true"))
        else:
            parser.add_argument(flag, type=type(default))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the bench's budget is set on two shared cores
    given = {k: v for k, v in vars(args).items() if k in Design.__dataclass_fields__}
    given = {k: v for k, v in given.items() if v is not None}
    frequencies = FREQUENCIES if args.frequency == "all" else (args.frequency,)
    results = []
    started = time.perf_counter()
    for frequency in frequencies:
        design = replace(DEFAULTS[frequency], **given)
        results.append(run_frequency(frequency, design, args))
        print(f"{frequency}: done at {time.perf_counter() - started:.0f}s", flush=True)
    print(" ".join(sys.argv[1:]))
    print(_summary(results))
    print(f"wall: {time.perf_counter() - started:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
