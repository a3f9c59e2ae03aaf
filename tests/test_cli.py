"""The `rnnkit` command line."""

import re

from click.testing import CliRunner

from rnnkit.cli import main


def test_demo_runs_and_its_hand_arithmetic_matches_the_layer():
    result = CliRunner().invoke(main, ["demo", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "Total params: 31 (124.00 B)" in result.output
    assert "648,321" in result.output  # Embedding(10000, 64) + SimpleRNN(64) + Dense(1)
    by_hand, layer = re.search(
        r"tomorrow = .* = ([\d.]+);  rnnkit says ([\d.]+)", result.output
    ).groups()
    assert by_hand == layer
    assert re.search(r"Epoch 2/2 .* val_accuracy: [\d.]+", result.output)


def test_demo_rejects_zero_epochs():
    result = CliRunner().invoke(main, ["demo", "--epochs", "0"])
    assert result.exit_code == 2
    assert "--epochs" in result.output
