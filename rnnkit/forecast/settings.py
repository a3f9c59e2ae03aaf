"""What `rnnkit forecast` trains: one flat dataclass, the reason for each default beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

CELLS = ("simple_rnn", "lstm", "gru")
STRATEGIES = ("direct", "recursive")
LOSSES = ("mse", "mae", "huber")
NORMALIZATIONS = ("series", "log-window")


@dataclass
class ForecastSettings:
    """What `rnnkit forecast` trains; each default has its reason beside it."""

    target: str | list = "temp_max"  # a list: one series per column
    features: list[str] | None = None  # None: every numeric column (the target included)
    date_col: str | None = "date"  # dates give the calendar features and the plot's axis
    id_col: str | None = None  # the column naming each row's series, for many series
    future_cols: list[str] = field(default_factory=list)  # known ahead: needed by predict
    static_cols: list[str] = field(default_factory=list)  # one value per series
    window: int = 14  # two weeks of weather: long enough for a front to pass
    horizon: int = 1  # predict this many rows ahead (1: tomorrow)
    # direct: one output per step ahead, trained together; recursive: one step, fed back
    strategy: str = "direct"
    cell: str = "gru"  # on the weather, GRU beat LSTM and SimpleRNN seed for seed
    units: int = 16  # ~1,000 training windows: 16 units overfit less than 24 or 32
    epochs: int = 100  # an upper bound: training stops when validation stops improving
    patience: int = 15  # epochs without a better validation loss before stopping
    batch_size: int = 64
    learning_rate: float = 1e-3  # halved after 4 epochs without improvement
    loss: str = "mse"  # the weather is scored by RMSE; "mae" suits sMAPE and MASE better
    # One series: the rows after the training rows, and the last rows, as fractions.
    validation_split: float = 0.15
    test_split: float = 0.15
    # Rows per series for validation and test (None: the fractions above for one series,
    # the horizon for many: each series is scored on its last `horizon` rows, as in the
    # M competitions). test_size=0 trains on all history, as before a real forecast.
    val_size: int | None = None
    test_size: int | None = None
    calendar: bool = True  # add sin/cos of the day of the year when there are dates
    predict_change: bool = True  # learn y[t+k] - y[t]: persistence is then the zero forecast
    # series: standardise each series on its training rows (one series, or alike ones);
    # log-window: log values, each window relative to its last (many series of different
    # levels and trends: on 300 M3 monthly series sMAPE 13.4 against 19.8, M3_DESIGN.md)
    normalize: str = "series"
    # divide out classical multiplicative seasonal indices (lag `season`) of the series that
    # pass a 90% autocorrelation test before the network, multiply them back after
    deseason: bool = False
    # after early stopping on the validation rows, train the members again on every row
    # (validation included) for the epochs it chose: the most recent rows are the most
    # informative (M3 monthly 13.38 against 13.54, M3_DESIGN.md)
    retrain_all: bool = False
    season: int | None = None  # rows per season for the seasonal-naive forecast; None: infer
    fill: str = "error"  # missing values and dates: "error", "ffill", "interpolate", "drop"
    # Prediction intervals at these levels (percent), from the validation windows' errors
    # (split conformal): see rnnkit/forecast/intervals.py for why not quantile heads.
    levels: tuple = ()
    seed: int = 0
    # Models trained from different seeds, their forecasts averaged: one GRU's skill over
    # persistence ranged 6.8-9.8% across 15 seeds on the weather; five averaged, 8.9-9.5%.
    ensemble: int = 5

    def check(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}."
            )
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {self.normalize!r}."
            )
        if self.normalize == "log-window":
            self.predict_change = True  # a window relative to its last row forecasts changes
        if self.deseason and (self.normalize != "log-window" or not self.season):
            raise ValueError(
                "deseason divides each series by its seasonal indices before the log, so it "
                "needs normalize='log-window' and a season (--normalize log-window --season "
                f"12 for monthly rows); got normalize={self.normalize!r}, season={self.season!r}."
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}.")
        for name in ("window", "horizon", "units", "epochs", "batch_size", "ensemble"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.season is not None and (not isinstance(self.season, int) or self.season < 1):
            raise ValueError(f"season must be a positive integer; got {self.season!r}.")
        for name in ("val_size", "test_size"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{name} must be a whole number of rows ≥ 0; got {value!r}.")
        if self.test_size and self.test_size < self.horizon:
            raise ValueError(
                f"test_size ({self.test_size} rows) is shorter than the horizon "
                f"({self.horizon}): no test window fits. Use --test-size {self.horizon} or "
                "more, or 0 to train on all rows."
            )
        if self.val_size and self.val_size < self.horizon:
            raise ValueError(
                f"val_size ({self.val_size} rows) is shorter than the horizon "
                f"({self.horizon}): no validation window fits. Use --val-size "
                f"{self.horizon} or more, or 0 to train a fixed number of epochs."
            )
        self.levels = tuple(self.levels or ())
        for level in self.levels:
            if (
                isinstance(level, bool)
                or not isinstance(level, (int, float))
                or not 0 < level < 100
            ):
                raise ValueError(
                    f"levels are percentages between 0 and 100, such as 80 95; got {level!r}."
                )
