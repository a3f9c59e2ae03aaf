"""`rnnkit explain`: what the recurrence of a saved model does on your data (rnnkit/explain/).

With a MODEL, the input it reads (`--csv` rows for a forecast model, `--text` for the text
models) goes through `rnnkit.explain.report`; the memory horizon and a short trace are printed
and the report (HTML, PNGs, JSON) written to --out. Without one, the notes' worked examples
and their vanishing-gradient experiment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from rnnkit.cli._common import set_threads, user_errors

# Sequences explained at most: the most recent windows of a series. The memory curve and the
# gate saturation are means; a few hundred sequences pin them down and keep a run to seconds.
MAX_SEQUENCES = 256
MAX_CHARS = 400  # of a text a language model is explained on: every step is traced
TASKS = ("forecast", "classify", "tag", "generate")


@dataclass
class Inputs:
    """What a saved model is explained on: `x`, targets `y` for its first `len(y)` sequences
    (None: none), the sequence to trace, the loss, and lines saying what they are."""

    x: object
    y: object
    sample: int
    loss: object
    described: str
    targets: str


@click.command()
@click.argument("model_path", metavar="[MODEL]", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Rows of the table a forecast model reads (the columns it was trained on); "
    "default: Seattle's weather, what rnnkit forecast trains on without --csv.",
)
@click.option(
    "--text", "texts", multiple=True, help="A text for a classify, tag or generate model (repeat)."
)
@click.option(
    "--vanishing",
    is_flag=True,
    help="Only the notes' experiment, in full: SimpleRNN, LSTM and GRU taught to remember k "
    "steps back, 5 seeds each (about 2½ minutes on 2 idle cores).",
)
@click.option(
    "--steps",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Steps of the trace printed (first and last); the report has more.",
)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--out",
    "out_dir",
    default="rnnkit-explain",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the report goes: all of its files or, if writing fails, none.",
)
def explain(model_path, csv_path, texts, vanishing, steps, threads, out_dir) -> None:
    """See what the recurrence does: memory horizon, unrolled trace, states, gradient flow.

    \b
    rnnkit explain rnnkit-forecast/model.rnnkit   # the default model, on its own data
    rnnkit explain sales-model/model.rnnkit --csv sales.csv
    rnnkit explain rnnkit-classify/model.rnnkit --text "Call me Ishmael."
    rnnkit explain               # the notes' worked examples, then the vanishing experiment
    rnnkit explain --vanishing   # only the experiment

    With a MODEL: prints how many recent steps its output depends on and a short trace, and
    writes report.html (self-contained: opens offline), trace.png, states.png, memory.png,
    gradient_flow.png and explain.json to --out. Without: the notes' ReLU and tanh RNNs
    step by step, then SimpleRNN, LSTM and GRU trained to remember an input k steps back
    (a short run: 2 lags, 3 seeds, about 35 s on 2 cores; --vanishing runs the full one);
    its table and plot go to --out.
    """
    from rich.console import Console

    console = Console(highlight=False)
    set_threads(threads)
    with user_errors():
        if model_path is None:
            if csv_path or texts:
                raise ValueError(
                    "--csv and --text are inputs of a saved model; name it first: rnnkit "
                    "explain MODEL.rnnkit --csv FILE (or --text TEXT)."
                )
            paths = _notes(console, out_dir, examples=not vanishing)
        else:
            if vanishing:
                raise ValueError(
                    "--vanishing trains its own models and reads no MODEL; run it alone: "
                    "rnnkit explain --vanishing"
                )
            paths = _explain_model(console, model_path, csv_path, texts, steps, out_dir)
    console.print("Wrote " + ", ".join(paths.values()), soft_wrap=True)


# ----------------------------------------------------------------------------- a model


def _explain_model(console, model_path, csv_path, texts, steps: int, out_dir) -> dict:
    from rnnkit.explain.report import report
    from rnnkit.explain.trace import Trace
    from rnnkit.saving import load_model, write_folder

    model = load_model(model_path, compile=False)
    _check_recurrent(model, model_path)
    inputs = _inputs(model, model_path, csv_path, texts)
    result = report(
        model,
        inputs.x,
        inputs.y,
        sample=inputs.sample,
        loss=inputs.loss,
        name=model_path,
        flow_note=inputs.targets,
    )
    paths = write_folder(out_dir, result.files())  # before printing: a failure is one line
    summary = result.summary
    console.print(f"Model: {model_path}: {'; '.join(summary['recurrent_layers'])}", soft_wrap=True)
    console.print(f"Inputs: {inputs.described}", soft_wrap=True, markup=False)
    console.print(summary["memory_sentence"], soft_wrap=True)
    first = Trace(result.trace.layers[:1], result.trace.sample)
    console.print(first.to_text(max_steps=steps), soft_wrap=True, markup=False)
    flow = str(result.flow) if result.flow is not None else f"gradient flow: {inputs.targets}"
    console.print(flow, soft_wrap=True, markup=False)
    return paths


def _check_recurrent(model, model_path) -> None:
    from rnnkit.explain._recorded import no_recurrent_layer
    from rnnkit.explain.trace import recurrent_layers

    if not recurrent_layers(model):
        raise no_recurrent_layer(model, f"'{model_path}'")


def _inputs(model, model_path, csv_path, texts) -> Inputs:
    task = (getattr(model, "metadata", None) or {}).get("task")
    if task not in TASKS:
        raise ValueError(
            f"'{model_path}' has no task rnnkit explain knows (metadata task={task!r}); it "
            f"reads models written by `rnnkit {'`, `rnnkit '.join(TASKS)}`. For a model of "
            "your own: rnnkit.explain.report(model, x, y).to_html() in Python."
        )
    if task == "forecast":
        if texts:
            raise ValueError(
                f"'{model_path}' is a forecast model: it reads rows of a table, not text. Give "
                "them with --csv FILE (the columns it was trained on)."
            )
        return _forecast_inputs(model, model_path, csv_path)
    if csv_path is not None:
        raise ValueError(
            f"'{model_path}' is a {task} model: it reads text, not a table. Give the text "
            'with --text "...".'
        )
    if not texts:
        raise ValueError(f"'{model_path}' is a {task} model: give a text with --text \"...\".")
    return {"classify": _classify_inputs, "tag": _tag_inputs, "generate": _generate_inputs}[task](
        model, model_path, list(texts)
    )


def _forecast_inputs(model, model_path, csv_path) -> Inputs:
    from rnnkit.forecast import check_forecast_model, read_table, table_windows

    meta = check_forecast_model(model, f"'{model_path}'")
    frame, source = read_table(csv_path, None)  # no --csv: the table `rnnkit forecast` reads
    try:
        x, y = table_windows(model, frame, source)
    except ValueError as err:
        if csv_path is not None:
            raise
        raise ValueError(
            f"'{model_path}' was not trained on {source}, the table rnnkit forecast reads "
            f"by default ({err}). Give rows of its own table with --csv FILE."
        ) from None
    start = max(0, len(x) - MAX_SEQUENCES)  # the most recent windows
    x, y = x[start:], y[start:]
    window, horizon = meta["window"], meta["horizon"]
    targets = (
        f"Loss: mse against the targets the model learned, on the {len(y)} windows with "
        f"{horizon} row(s) after them in '{source}'."
        if len(y)
        else f"'{source}' has no rows after its windows, so they have no targets; give at "
        f"least {window + horizon} rows to see it."
    )
    described = (
        f"the last {len(x)} windows of {window} rows of '{source}'; the trace follows the "
        "last one, the window `rnnkit predict` forecasts from"
    )
    return Inputs(x, y, len(x) - 1, "mse", described, targets)


def _classify_inputs(model, model_path, texts) -> Inputs:
    from rnnkit.classify import check_classify_model
    from rnnkit.data import pad_sequences, tokenizer_from_json

    meta = check_classify_model(model, f"'{model_path}'")
    tokenizer = tokenizer_from_json(json.dumps(meta["tokenizer"]))
    sequences = tokenizer.texts_to_sequences(texts)
    _check_words(texts, [len(s) for s in sequences])
    x = pad_sequences(sequences, maxlen=meta["maxlen"], padding="post", truncating="post")
    if model.inputs and model.inputs[0].shape[1] is None:  # a model of any length: no step
        x = x[:, : max(len(s) for s in sequences)]  # that is padding in every text
    output = model.predict(x, batch_size=256)
    binary = output.shape[-1] == 1
    y = (output[:, 0] > 0.5).astype(int) if binary else output.argmax(-1)
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    return Inputs(x, y, 0, loss, _described(texts, "words"), _OWN_PREDICTIONS)


def _tag_inputs(model, model_path, texts) -> Inputs:
    from rnnkit.tag import check_tag_model, encode, predicted_tags, tokenize

    meta = check_tag_model(model, f"'{model_path}'")
    tokens = [tokenize(text) for text in texts]
    _check_words(texts, [len(t) for t in tokens])
    placeholder = [(t, [meta["tags"][1]] * len(t)) for t in tokens]  # encode wants tags
    x, _ = encode(placeholder, meta["words"], meta["tags"], meta["lowercase"], meta["max_len"])
    y = predicted_tags(model.predict(x, batch_size=256))  # (pieces, tokens)
    loss = "sparse_categorical_crossentropy"
    return Inputs(x, y, 0, loss, _described(texts, "tokens"), _OWN_PREDICTIONS)


def _generate_inputs(model, model_path, texts) -> Inputs:
    import numpy as np

    from rnnkit.generate import check_generate_model
    from rnnkit.losses import SparseCategoricalCrossentropy

    vocabulary = check_generate_model(model, f"'{model_path}'")["vocabulary"]
    if len(texts) > 1:
        raise ValueError(
            f"'{model_path}' is a language model: it is explained on one text; give one "
            f"--text (got {len(texts)})."
        )
    text = texts[0][:MAX_CHARS]
    unknown = sorted(set(text) - set(vocabulary))
    if unknown or len(text) < 2:
        raise ValueError(
            f"The text must have at least 2 characters, each one the model knows (it predicts "
            f"each next one); got {len(text)}, unknown: {', '.join(map(repr, unknown)) or 'none'}"
            f". It knows: {''.join(vocabulary)!r}."
        )
    index = {char: i for i, char in enumerate(vocabulary)}
    ids = np.array([[index[char] for char in text]])  # (1, chars)
    loss = SparseCategoricalCrossentropy(from_logits=True)
    described = f"the first {len(text)} characters of the text, each predicting the next"
    return Inputs(ids[:, :-1], ids[:, 1:], 0, loss, described, _NEXT_CHARACTERS)


_NEXT_CHARACTERS = "Targets: each next character of the text, the loss the model trained on."
_OWN_PREDICTIONS = (
    "Targets: the model's own predictions (the text has no label), so the loss is the one "
    "training would have seen had they been right."
)


def _check_words(texts, counts) -> None:
    for number, (text, count) in enumerate(zip(texts, counts), start=1):
        if count == 0:
            raise ValueError(f"Text {number} ({text!r}) has no words to explain.")


def _described(texts, unit: str) -> str:
    more = f"; memory is averaged over all {len(texts)}" if len(texts) > 1 else ""
    return f"{len(texts)} text(s), as {unit}; the trace follows the first{more}"


# ---------------------------------------------------------------------------- the notes


def _notes(console, out_dir, examples: bool) -> dict:
    from rnnkit.saving import write_folder

    files = _worked_examples(console) if examples else {}
    files |= _vanishing(console, quick=examples)
    return write_folder(out_dir, files)


def _title(console, text: str) -> None:
    console.print(f"\n== {text} ==", markup=False, soft_wrap=True)


def _worked_examples(console) -> dict:
    """Print the notes' two worked examples through `trace`; their diagrams as files."""
    import numpy as np

    from rnnkit.demo import tanh_step, yesterday_today_model
    from rnnkit.explain import trace
    from rnnkit.explain._figure import png_bytes
    from rnnkit.explain._trace_text import num

    _title(console, "Seed 003: yesterday's and today's value predict tomorrow's (ReLU RNN)")
    console.print(
        "One ReLU unit: w1 = 1.8 on the input, w2 = -0.5 on the state from the step before, "
        "w3 = 1.1 on the output, biases 0. Yesterday = 0.5, today = 1.0.",
        soft_wrap=True,
    )
    model = yesterday_today_model()
    x = np.array([[[0.5], [1.0]]], dtype=np.float32)
    notes = trace(model, x)
    console.print(notes.to_text(), markup=False, soft_wrap=True)
    h2 = notes.layers[0].directions[0].steps[-1].h[0]
    said = float(model.predict(x)[0, -1, 0])
    console.print(
        f"tomorrow = h_2 × w3 + b2 = {num(h2)} × 1.1 + 0.0 = {num(h2 * 1.1)}   "
        f"(the model's Dense layer: {num(said)})",
        soft_wrap=True,
    )
    _title(
        console, "Seed 004: one step of a 4-unit tanh RNN, h_t = tanh(W_x x_t + W_h h_{t-1} + b)"
    )
    layer, x_t, h_prev = tanh_step()
    step = trace(layer, x_t, initial_state=[h_prev])
    console.print(step.to_text(), markup=False, soft_wrap=True)
    return {
        "seed_003": ("notes-003-unrolled.png", png_bytes(notes.plot())),
        "seed_004": ("notes-004-step.png", png_bytes(step.plot())),
    }


def _vanishing(console, quick: bool) -> dict:
    """Run the notes' experiment (`QUICK` after the worked examples, in full alone), print its
    table; its plot, table and numbers as files."""
    from rnnkit.explain import vanishing
    from rnnkit.explain._figure import png_bytes
    from rnnkit.explain.vanishing import QUICK

    what = (
        "a short run: 2 lags, 3 seeds, about 35 s; too few seeds to tell the cells apart, "
        "the full run does: rnnkit explain --vanishing"
        if quick
        else "4 lags, 5 seeds, about 2½ minutes on 2 idle cores"
    )
    _title(console, f"Seed 002: vanishing gradients, measured (SimpleRNN, LSTM, GRU; {what})")
    result = vanishing(
        progress=lambda line: console.print("  " + line, markup=False, soft_wrap=True),
        **(QUICK if quick else {}),
    )
    console.print(str(result), markup=False, soft_wrap=True)
    return {
        "vanishing": ("vanishing.png", png_bytes(result.plot())),
        "vanishing_table": ("vanishing.txt", (str(result) + "\n").encode()),
        "vanishing_json": ("vanishing.json", json.dumps(result.to_dict(), indent=1).encode()),
    }
