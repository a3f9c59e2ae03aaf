"""Training: `compile`, `fit`, `evaluate` and the `History` they record."""

from rnnkit.training._fit import History, compile_model, evaluate_model, fit_model

__all__ = ["History", "compile_model", "evaluate_model", "fit_model"]
