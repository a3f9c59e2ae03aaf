"""`rnnkit.explain.report`: the page holds every view of the same inputs, loads nothing from
anywhere (checked by parsing it, and in headless Chromium when one is installed)."""

from __future__ import annotations

import base64
import doctest
import importlib
import json
import re
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser

import numpy as np
import pytest

from rnnkit import Input, Sequential
from rnnkit.explain import gradient_flow, memory, states, trace
from rnnkit.explain.report import report
from rnnkit.layers import LSTM, Dense, SimpleRNN

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    """Two stacked recurrent layers (a SimpleRNN read at every step, then an LSTM)."""
    return Sequential(
        [
            Input((9, 2)),
            SimpleRNN(3, return_sequences=True, name="rnn"),
            LSTM(4, name="lstm"),
            Dense(1),
        ]
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(12, 9, 2)).astype(np.float32), rng.normal(size=(12, 1))


@pytest.fixture(scope="module")
def page(model, data):
    x, y = data
    return report(model, x, y, sample=3, loss="mse", name="stacked.rnnkit")


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of its <style> blocks."""

    def __init__(self):
        super().__init__()
        self.tags, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


# ------------------------------------------------------------------------ no network


def test_the_page_has_no_external_reference(page):
    html = page.to_html()
    tags = parse(html)
    names = [tag for tag, _ in tags.tags]
    assert not {"link", "iframe", "object", "embed", "base", "audio", "video"} & set(names)
    for tag, attrs in tags.tags:
        for key in ("src", "href", "action", "poster", "srcset", "data"):
            value = attrs.get(key)
            assert value is None or value.startswith("data:"), (tag, key, value[:80])
        if tag == "script":
            assert "src" not in attrs
    for needle in ('src="http', "src='http", 'href="http', "<link", "@import", "url(", "//cdn"):
        assert needle not in html
    assert not re.search(r"https?://", html)  # not even a link to click
    css = "".join(tags.styles)
    assert "font-face" not in css and "url(" not in css


def test_every_image_is_an_inline_png_of_the_files(page):
    tags = parse(page.to_html())
    sources = [attrs["src"] for tag, attrs in tags.tags if tag == "img"]
    assert len(sources) == 4  # the diagram, the states, the memory curve, the gradient flow
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in sources)
    inline = [base64.b64decode(src[len(prefix) :]) for src in sources]
    assert all(png.startswith(PNG) for png in inline)
    files = page.files()
    written = [files[key][1] for key in ("trace", "states", "memory", "gradient_flow")]
    assert inline == written


def test_a_content_security_policy_forbids_loading_anything(page):
    policy = next(
        attrs["content"]
        for tag, attrs in parse(page.to_html()).tags
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in policy and "img-src data:" in policy


# ------------------------------------------------------------------- what it holds


def test_the_numbers_are_the_views_of_the_same_inputs(page, model, data):
    x, y = data
    numbers = json.loads(page.files()["json"][1])
    assert sorted(numbers) == [
        "gradient_flow",
        "gradient_flow_note",
        "memory",
        "states",
        "summary",
        "trace",
    ]
    assert numbers["trace"] == json.loads(json.dumps(trace(model, x, sample=3).to_dict()))
    found = memory(model, x)
    assert numbers["memory"]["influence"] == pytest.approx(found.influence.tolist())
    assert numbers["summary"]["memory_horizon"]["steps"] == found.steps
    flow = gradient_flow(model, x, y, loss="mse")
    assert numbers["gradient_flow"]["layers"][1]["norms"] == pytest.approx(flow.norms["lstm"])
    kept = states(model, x, sample=3)
    np.testing.assert_allclose(numbers["states"]["layers"][1]["states"], kept["lstm"].states)
    assert numbers["summary"]["recurrent_layers"] == [
        "rnn: SimpleRNN, 3 units",
        "lstm: LSTM, 4 units",
    ]
    assert numbers["summary"]["traced_sequence"] == 3


def test_the_page_says_what_each_view_shows(page):
    html = page.to_html()
    for heading in (
        "The network unrolled",
        "One sequence, step by step",
        "Hidden states: the memory over time",
        "How far back the model remembers",
        "Gradient flow: vanishing and exploding gradients",
    ):
        assert f"<h2>{heading}</h2>" in html
    assert "2^50" in html and "0.5^50" in html  # the notes' arithmetic
    assert escape(page.summary["memory_sentence"]) in html
    assert page.trace._repr_html_() in html  # the step-by-step table


def test_without_targets_there_is_no_gradient_flow_and_the_page_says_why(model, data):
    x, _ = data
    page = report(model, x, flow_note="The rows have no targets yet.")
    assert page.flow is None and "gradient_flow" not in page.files()
    assert "Not measured: The rows have no targets yet." in page.to_html()
    assert len([t for t, _ in parse(page.to_html()).tags if t == "img"]) == 3


def test_targets_for_the_first_sequences_only(model, data):
    x, y = data
    page = report(model, x, y[:5], loss="mse")
    expected = gradient_flow(model, x[:5], y[:5], loss="mse")
    assert page.flow.norms["lstm"] == pytest.approx(expected.norms["lstm"])
    assert page.memory.sequences == 12


# ---------------------------------------------------------------------- the browser


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(tmp_path, *args):
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _loaded_images(tmp_path, html: str) -> tuple[int, int]:
    """`(images, broken)` as the page's own script counts them after it loaded in Chromium."""
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    dom = _headless(tmp_path, "--virtual-time-budget=5000", "--dump-dom", path.as_uri()).stdout
    body = re.search(r'<body data-images="(\d+)" data-images-broken="(\d+)"', dom)
    assert body, dom[:500]
    return int(body.group(1)), int(body.group(2))


@pytest.mark.skipif(_chromium() is None, reason="no chromium installed")
def test_the_page_renders_in_chromium_with_every_image_loaded(page, tmp_path):
    html = page.to_html()
    assert _loaded_images(tmp_path, html) == (4, 0)
    shot = tmp_path / "shot.png"
    page_path = (tmp_path / "report.html").as_uri()
    _headless(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", page_path)
    assert shot.read_bytes().startswith(PNG)


@pytest.mark.skipif(_chromium() is None, reason="no chromium installed")
def test_chromium_counts_a_broken_image(page, tmp_path):
    """The check above can fail: an image whose data is not a PNG counts as broken."""
    html = page.to_html().replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1)
    assert _loaded_images(tmp_path, html) == (4, 1)


def test_docstring_examples_run():
    """The examples in the docstrings of the report, the tasks' memory horizon, the notes'
    models, `write_folder` and `table_windows`."""
    import rnnkit._task
    import rnnkit.demo
    import rnnkit.explain.report
    import rnnkit.forecast
    import rnnkit.saving

    for module in (rnnkit.explain.report, rnnkit._task, rnnkit.demo):
        assert doctest.testmod(module).failed == 0, module.__name__
    for function in (rnnkit.saving.write_folder, rnnkit.forecast.table_windows):
        module = importlib.import_module(function.__module__)
        [test] = doctest.DocTestFinder().find(function, globs=vars(module))
        assert doctest.DocTestRunner().run(test).failed == 0, function.__name__
