"""`Embedding`: token ids to vectors, and the mask that marks padding."""

from __future__ import annotations

import numpy as np
import torch

from rnnkit import constraints, initializers, regularizers
from rnnkit._capture import in_graph
from rnnkit.layers import _direct
from rnnkit.layers._base import Layer

_aten = torch.ops.aten


class Embedding(Layer):
    """Looks up a learned vector per token id: `(batch, length) -> (batch, length, output_dim)`.

    Args:
        input_dim: vocabulary size; ids must lie in `[0, input_dim)`.
        output_dim: size of each vector.
        embeddings_initializer: default `'uniform'` (U(-0.05, 0.05)), as in Keras.
        embeddings_regularizer, embeddings_constraint: as in Keras.
        mask_zero: treat id 0 as padding; the output then carries a
            `(batch, length)` mask that recurrent layers after it honour.
        weights: optional initial matrix `(input_dim, output_dim)`, e.g. pretrained vectors
            (the Keras 2 spelling `weights=[matrix]` works too).
        input_length: Keras 2 spelling of the sequence length (`Input(shape=(length,))`).

    Weights: embeddings `(input_dim, output_dim)`.

    Example:
        >>> import numpy as np
        >>> tuple(Embedding(1000, 64)(np.array([[4, 20, 0]])).shape)
        (1, 3, 64)
    """

    casts_integer_inputs = False  # ids stay integers

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        input_length=None,
        activity_regularizer=None,
        **kwargs,
    ):
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"Embedding: {arg} must be a positive integer (input_dim is the vocabulary "
                    f"size, output_dim the vector size); got {arg}={value!r}."
                )
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.input_length = input_length
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._initial_weights = weights
        if weights is not None:  # the table's shape is known: build now, as Keras does
            self.build(None)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            self.embeddings_regularizer,
            self.embeddings_constraint,
        )
        if self._initial_weights is not None:
            weights = self._initial_weights
            if isinstance(weights, (list, tuple)) and len(weights) == 1:
                weights = weights[0]
            self.set_weights([np.asarray(weights)])
            self._initial_weights = None

    def check_input_shape(self, shape):
        if not isinstance(shape, tuple) or len(shape) < 1:
            raise ValueError(
                f"Embedding '{self.name}' expects token ids (batch, length); got {shape}."
            )

    def _ids(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dtype == torch.bool or inputs.is_complex():
            raise TypeError(
                f"Embedding '{self.name}' expects integer token ids; got dtype {inputs.dtype}."
            )
        if in_graph() or inputs.is_meta:  # fit checked all ids before recording a CUDA graph;
            return inputs.long()  # a meta tensor (a model sized before it is built) has none
        if torch.compiler.is_compiling():  # torch.export traces no values to check
            return inputs.long()
        if inputs.is_floating_point():
            if not torch.equal(inputs, inputs.round()):
                bad = inputs[inputs != inputs.round()].flatten()[:3].tolist()
                raise TypeError(
                    f"Embedding '{self.name}' expects integer token ids; got dtype "
                    f"{str(inputs.dtype).replace('torch.', '')} with non-integer values such as "
                    f"{bad}. Map tokens to ids first (e.g. with a Tokenizer), or pass "
                    "x.astype('int64') if the values are ids already."
                )
            inputs = inputs.long()
        if inputs.numel():
            low, high = (int(v) for v in torch.aminmax(inputs))
            if low < 0 or high >= self.input_dim:
                raise ValueError(
                    f"Embedding '{self.name}' has input_dim={self.input_dim}, so ids must lie in "
                    f"[0, {self.input_dim - 1}]; got ids from {low} to {high}. Raise input_dim to "
                    f"at least {high + 1} (vocabulary size + 1 when 0 is padding), or cap the "
                    "vocabulary when tokenizing."
                )
        return inputs.long()

    def call(self, inputs):
        # The same rows as `self.embeddings[ids]`; torch's embedding backward sums the
        # gradient rows about twice as fast as indexing's scatter-add.
        return torch.nn.functional.embedding(self._ids(inputs), self.embeddings)  # (B, L, dim)

    def direct_blocker(self, training):
        if self.mask_zero:
            return f"Embedding '{self.name}' has mask_zero=True (masks run on autograd)"
        return _direct.common_blocker(self, Embedding)

    def direct_call(self, inputs, training, needs_input_grad):
        ids, table = self._ids(inputs), self.embeddings

        def backward(dy):  # the rows' gradients summed per id, as autograd's embedding does
            rows = table.shape[0]
            _direct.add_gradient(table, _aten.embedding_dense_backward(dy, ids, rows, -1, False))

        return torch.nn.functional.embedding(ids, table), backward

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return inputs != 0

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
            embeddings_constraint=constraints.serialize(self.embeddings_constraint),
            mask_zero=self.mask_zero,
        )
        return config
