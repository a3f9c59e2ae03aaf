"""`Ensemble`: models of one architecture that train together and predict as their mean."""

from __future__ import annotations

import numpy as np

from rnnkit.models._model import Model
from rnnkit.training._ensemble import fit_ensemble


class Ensemble:
    """Members of one architecture, trained together, predicting their mean: a seed ensemble.

    Averaging a few networks that differ only in their starting weights is the cheapest way
    to a steadier forecast. `fit` trains the members as one: each batch goes through all of
    them in one pass, their weights stacked along a members axis, so that a small model's
    per-batch overhead is paid once instead of once per member. Each member keeps its own
    optimizer, callbacks (`member_callbacks`), History and best weights, and ends as it would
    have trained alone on the same batches.

    Example:
        >>> from rnnkit import Sequential, layers
        >>> def build():
        ...     model = Sequential([layers.Input((5, 2)), layers.GRU(4), layers.Dense(1)])
        ...     model.compile(optimizer="adam", loss="mse")
        ...     return model
        >>> ensemble = Ensemble.from_seeds(build, seeds=[0, 1, 2])
        >>> import numpy as np
        >>> x, y = np.ones((8, 5, 2), "float32"), np.ones((8, 1), "float32")
        >>> histories = ensemble.fit(x, y, epochs=2, verbose=0)
        >>> len(histories), ensemble.predict(x).shape
        (3, (8, 1))
    """

    def __init__(self, members, name: str = "ensemble"):
        members = list(members)
        if not members:
            raise ValueError("Ensemble needs at least one member model; got an empty list.")
        for i, member in enumerate(members):
            if not isinstance(member, Model):
                raise TypeError(
                    f"Ensemble: member {i} must be an rnnkit model (Sequential or Model); got "
                    f"{type(member).__name__}."
                )
        if len({id(member) for member in members}) != len(members):
            raise ValueError(
                "Ensemble: the same model appears twice among the members; give each member "
                "its own model (e.g. Ensemble.from_seeds(build, seeds))."
            )
        self.members = members
        self.name = name
        self.step_path = None  # how the last fit ran its steps
        self.stop_training = False  # set by a callback to stop every member

    @classmethod
    def from_seeds(cls, build, seeds, name: str = "ensemble") -> Ensemble:
        """`build()` (a function returning a compiled model) once per seed, each after
        `rnnkit.utils.set_random_seed(seed)`: the members differ in their starting weights."""
        from rnnkit.utils import set_random_seed

        members = []
        for seed in seeds:
            set_random_seed(seed)
            members.append(build())
        return cls(members, name=name)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    fit = fit_ensemble

    def as_model(self, name: str | None = None) -> Model:
        """One functional `Model` that runs the members side by side on the same inputs and
        averages their outputs (an `Average` layer): what to save, export or serve."""
        from rnnkit.layers import Average, Input

        first = self.members[0]
        specs = first.inputs if isinstance(first.inputs, (list, tuple)) else [first.inputs]
        if not specs or any(spec is None for spec in specs):
            raise ValueError(
                f"Ensemble '{self.name}': its members have no known inputs yet; build or fit "
                "them first (e.g. give the first layer input_shape=...)."
            )
        inputs = [Input(tuple(spec.shape[1:]), dtype=spec.dtype) for spec in specs]
        given = inputs[0] if len(inputs) == 1 else inputs
        if len(self.members) == 1:
            return Model(given, first(given), name=name or self.name)
        dtype = first.layers[-1].dtype if getattr(first, "layers", None) else None
        outputs = Average(dtype=dtype)([member(given) for member in self.members])
        return Model(given, outputs, name=name or self.name)

    def save(self, filepath) -> None:
        """Save the ensemble as one model (`as_model()`), which `rnnkit.load_model` reads."""
        self.as_model().save(filepath)

    def predict(self, x, batch_size=None, verbose=0):
        """The members' predictions averaged, as a numpy array."""
        outputs = [member.predict(x, batch_size=batch_size, verbose=verbose) for member in self]
        if isinstance(outputs[0], list):  # several outputs: each averaged
            return [_mean([out[i] for out in outputs]) for i in range(len(outputs[0]))]
        return _mean(outputs)

    def __repr__(self) -> str:
        return f"Ensemble(name={self.name!r}, members={len(self)})"


def _mean(arrays):
    return np.mean(arrays, axis=0).astype(arrays[0].dtype)
