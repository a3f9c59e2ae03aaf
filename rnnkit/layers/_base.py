"""`Layer`: the base of every rnnkit layer and model.

A layer is a `torch.nn.Module` with Keras' habits:

- weights are created lazily by `build(input_shape)` on the first call, so
  `SimpleRNN(3)` needs no input size up front;
- weights are `torch.nn.Parameter`s in Keras layout (a kernel is `(in, out)`),
  and `get_weights()` / `set_weights()` exchange them as numpy arrays in the
  order Keras uses;
- names are automatic and unique (`simple_rnn`, `simple_rnn_1`, ...);
- masks travel with the tensors: a layer's output mask is attached to its output
  tensor, and the next layer receives it as `mask=`;
- calling a layer on `Input(...)` (a `SymbolicTensor`) records a graph node
  instead of computing, which is how functional models are made.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import math
import re
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import _tree, activations, constraints, initializers, regularizers
from rnnkit.layers._graph import Node, SymbolicTensor

MASK_ATTR = "_rnnkit_mask"
# True: add_weight makes shape-only weights on torch's meta device (no memory, no values).
META_WEIGHTS = contextvars.ContextVar("rnnkit_meta_weights", default=False)

_name_counters: defaultdict[str, itertools.count] = defaultdict(itertools.count)


def unique_name(prefix: str) -> str:
    """`prefix`, then `prefix_1`, `prefix_2`, ... as Keras names layers."""
    n = next(_name_counters[prefix])
    return prefix if n == 0 else f"{prefix}_{n}"


def reset_names() -> None:
    _name_counters.clear()


def snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def as_dtype(dtype) -> torch.dtype:
    """`'float32'`, `np.float32` or `torch.float32` -> `torch.float32`."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError as err:
        raise TypeError(
            f"Unknown dtype {dtype!r}; use e.g. 'float32', 'float64' or 'int64'."
        ) from err
    if name == "bool":
        return torch.bool
    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):  # numpy's object, str, datetime64, ...
        raise TypeError(
            f"Unknown dtype {dtype!r}: torch has no tensors of it. Use e.g. 'float32', "
            "'float64' or 'int64'."
        )
    return found


def get_mask(tensor) -> torch.Tensor | None:
    """The mask a previous layer attached to `tensor`, if any."""
    return getattr(tensor, MASK_ATTR, None)


def set_mask(tensor, mask) -> None:
    if isinstance(tensor, torch.Tensor):
        setattr(tensor, MASK_ATTR, mask)


def to_tensor(value, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """numpy / pandas / list / tensor -> tensor; floats become `dtype` (float32 by default)."""
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        if hasattr(value, "to_numpy"):  # pandas Series / DataFrame
            value = value.to_numpy()
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(
                f"Cannot turn {type(value).__name__} of Python objects into a tensor; "
                "pass numbers (a numpy array or nested lists of equal length)."
            )
        if not array.flags.writeable:  # e.g. pandas' read-only views: torch needs to own it
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_floating_point() and dtype is not None and dtype.is_floating_point:
        tensor = tensor.to(dtype)
    if device is not None and tensor.device != device:
        tensor = tensor.to(device)
    return tensor


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


class Layer(nn.Module):
    """Base class: lazy weights, Keras names and weight order, masks, symbolic calls.

    Subclasses implement `build(input_shape)` (create weights with `add_weight`)
    and `call(inputs, ...)`, and `compute_output_shape(input_shape)` so that the
    layer can be used in functional models.

    Args:
        name: unique name; generated from the class name when omitted.
        trainable: whether fitting updates this layer's weights.
        dtype: the dtype of weights and computations (default `'float32'`).
        input_shape / batch_input_shape / input_dim / input_length / batch_size:
            the older Keras spellings of the input shape; on the first layer of a
            `Sequential` model they stand for an `Input(...)` before it.
    """

    supports_masking = False
    # Built when made, as Keras' weightless Dropout, Masking and Activation are.
    built_at_init = False
    # Integer and bool inputs become the layer's float dtype, as Keras' ops promote them; a
    # layer that reads integers as such (Embedding's ids) turns this off.
    casts_integer_inputs = True

    def __new__(cls, *args, **kwargs):
        layer = super().__new__(cls)
        # Keras records the constructor arguments of a class of the user's, so that one
        # which writes no get_config still saves and loads (see `get_config`).
        layer.__dict__["_constructor_args"] = _user_arguments(cls, args, kwargs)
        return layer

    def __setattr__(self, name, value):
        if isinstance(value, nn.Module) or not isinstance(
            getattr(type(self), name, None), activations.Attribute
        ):
            super().__setattr__(name, value)
        else:  # torch refuses a function where a module activation was; the Attribute takes it
            object.__setattr__(self, name, value)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _marks_built(cls.__dict__["build"])

    def __init__(
        self,
        name=None,
        trainable=True,
        dtype=None,
        input_shape=None,
        batch_input_shape=None,
        batch_size=None,
        input_dim=None,
        input_length=None,
        activity_regularizer=None,
        **kwargs,
    ):
        super().__init__()
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}() got unexpected argument(s) "
                f"{', '.join(sorted(kwargs))}. Check the spelling against "
                f"help(rnnkit.layers.{type(self).__name__})."
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Layer name must be a string; got {name!r}.")
        self.name = name or unique_name(self._default_name())
        self.dtype = as_dtype(dtype)
        self.built = self.built_at_init
        self._trainable = bool(trainable)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.inbound_nodes: list[Node] = []
        self._activity_losses: list[torch.Tensor] = []
        # weight name -> (regularizer, constraint, trainable)
        self._weight_info: dict[str, tuple[Any, Any, bool]] = {}
        self._build_input_shape = None
        self.batch_input_shape = self._legacy_batch_shape(
            input_shape, batch_input_shape, batch_size, input_dim, input_length
        )

    # ----------------------------------------------------------------- naming
    @classmethod
    def _default_name(cls) -> str:
        return snake_case(cls.__name__)

    def _legacy_batch_shape(
        self, input_shape, batch_input_shape, batch_size, input_dim, input_length
    ):
        if batch_input_shape is not None:
            return tuple(batch_input_shape)
        if input_shape is None and input_dim is not None:
            input_shape = self._shape_from_input_dim(input_dim, input_length)
        elif input_length is not None and input_shape is None:
            raise TypeError(
                f"{type(self).__name__} '{self.name}': input_length={input_length} needs "
                f"input_dim= too, or write input_shape=(timesteps, features)."
            )
        if input_shape is None:
            return None
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        return (batch_size, *input_shape)

    def _shape_from_input_dim(self, input_dim, input_length):
        """`input_dim=N` (Keras 2) means per-sample shape `(N,)` for most layers."""
        if input_length is not None:
            return (input_length, input_dim)
        return (input_dim,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    # ---------------------------------------------------------------- weights
    def add_weight(
        self,
        name: str,
        shape,
        initializer="glorot_uniform",
        regularizer=None,
        constraint=None,
        trainable=True,
        dtype=None,
        transposed=False,
    ) -> nn.Parameter:
        """Create a weight of `shape`, register it and return it.

        `transposed=True` (a matrix) keeps the weight's transpose in memory: the weight reads
        and behaves as `shape`, but `weight.t()` is contiguous. For kernels that take the
        transpose (torch's LSTM wants `(4*units, input_dim)`), it saves copying the weight,
        and its gradient back, on every call.
        """
        init = initializers.get(initializer)
        dtype = as_dtype(dtype) if dtype else self.dtype
        if META_WEIGHTS.get():  # rnnkit.saving sizes a file's model before allocating it
            value = torch.empty(tuple(shape), dtype=dtype, device="meta")
        else:
            value = init(tuple(shape), dtype=dtype)
        if transposed:
            value = value.t().contiguous().t()
        param = nn.Parameter(value, requires_grad=bool(trainable and self._trainable))
        self.register_parameter(name, param)
        self._weight_info[name] = (
            regularizers.get(regularizer),
            constraints.get(constraint),
            bool(trainable),
        )
        return param

    @property
    def weights(self) -> list[nn.Parameter]:
        """All weights, in Keras' order: this layer's, then each sub-layer's."""
        return list(self.parameters())

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for name, param in self.named_parameters(recurse=False):
            param.requires_grad_(self._trainable and self._weight_info.get(name, (0, 0, 1))[2])
        for child in _sublayers(self):
            child.trainable = value

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has no weights yet: it is built on its "
                "first call. Call it on data or on Input(shape=...), or call .build(input_shape)."
            )
        return sum(math.prod(w.shape) for w in self.weights)

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays, in Keras' layout and order."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Load numpy arrays (as `get_weights()` returns them) into the weights."""
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            expected = ", ".join(shape_str(tuple(w.shape)) for w in own) or "none"
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has {len(own)} weight(s) ({expected}); "
                f"set_weights got {len(weights)} array(s). Pass one array per weight, in the "
                "order get_weights() returns them."
            )
        for i, (param, value) in enumerate(zip(own, weights)):
            value = np.asarray(value)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': weight {i} ({self._weight_name(param)}) "
                    f"has shape {shape_str(tuple(param.shape))}; set_weights got "
                    f"{shape_str(value.shape)}. Weights use Keras layout, e.g. a kernel is "
                    "(input_dim, units)."
                )
        with torch.no_grad():
            for param, value in zip(own, weights):
                param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype))

    def _weight_name(self, param) -> str:
        for name, p in self.named_parameters():
            if p is param:
                return name
        return "?"

    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization penalties, in Keras' order: activity ones of the last call, then
        weight penalties computed now."""
        layers = [m for m in self.modules() if isinstance(m, Layer)]
        out = [loss for layer in layers for loss in layer._activity_losses]
        for layer in layers:
            for name, param in layer.named_parameters(recurse=False):
                regularizer = layer._weight_info.get(name, (None,))[0]
                if regularizer is not None:
                    out.append(regularizer(param))
        return out

    def apply_constraints(self) -> None:
        """Project weights onto their constraints (run after each optimizer step)."""
        with torch.no_grad():
            for module in self.modules():
                if not isinstance(module, Layer):
                    continue
                for name, param in module.named_parameters(recurse=False):
                    constraint = module._weight_info.get(name, (None, None))[1]
                    if constraint is not None:
                        param.copy_(constraint(param))

    # ------------------------------------------------------------------ build
    def build(self, input_shape) -> None:
        """Create weights for inputs of `input_shape`; layers without weights skip it."""
        self.built = True

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            self.build(input_shape)
            if self._build_input_shape is None:  # a layer with no build() of its own
                self._build_input_shape = input_shape

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(
            f"{type(self).__name__} does not define compute_output_shape(), so it cannot be "
            "used on Input(...) in a functional or Sequential model with a known input shape."
        )

    def compute_mask(self, inputs, mask=None):
        """The mask of the output: passed through by layers that support masking."""
        return mask if self.supports_masking else None

    def check_input_shape(self, shape) -> None:
        """Raise a clear error if `shape` cannot go into this layer (before computing)."""

    # ------------------------------------------------------- fit's direct step
    def direct_blocker(self, training: bool) -> str | None:
        """Why fit's direct step cannot run this layer (None if it can): see
        `rnnkit.layers._direct`. Layers with a hand-written backward pass override it."""
        return f"{type(self).__name__} '{self.name}' has no hand-written backward pass"

    def direct_call(self, inputs, training: bool, needs_input_grad: bool):
        """`(outputs, backward)`: this layer's output with no autograd graph recorded, and
        `backward(d_outputs)`, which adds the weights' gradients to their `.grad` and returns
        the input's gradient (None unless `needs_input_grad`)."""
        raise NotImplementedError(self.direct_blocker(training))

    def stacked_blocker(self) -> str | None:
        """Why an ensemble's members cannot run this layer stacked (None if they can): see
        `stacked_call`. Layers with a members kernel override it."""
        return f"no stacked kernel for {type(self).__name__}"

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad: bool):
        """`direct_call` for an ensemble's members at once: `layers` holds each member's copy
        of this layer, `inputs` their rows, member-major (`rnnkit.training._ensemble`)."""
        raise NotImplementedError(layers[0].stacked_blocker())

    # ------------------------------------------------------------------- call
    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement call().")

    def forward(self, *args, **kwargs):
        return self.call(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        if not args:
            raise TypeError(f"{type(self).__name__} '{self.name}' was called without inputs.")
        if _has_symbolic(args, kwargs):
            return self._symbolic_call(*args, **kwargs)
        inputs = self._convert_inputs(args[0])
        args = (inputs, *args[1:])
        shapes = _shapes(inputs)
        self.check_input_shape(shapes)
        if not self.built:
            self._maybe_build(shapes)
        params = _call_params(type(self))
        mask = kwargs.pop("mask", None)
        if mask is None:
            if isinstance(inputs, torch.Tensor):
                mask = get_mask(inputs)
            else:
                masks = [get_mask(t) for t in _tree.flatten(inputs)]
                if any(m is not None for m in masks):
                    mask = masks
        if "mask" in params and mask is not None:
            kwargs["mask"] = mask
        if "training" not in params:
            kwargs.pop("training", None)
        elif kwargs.get("training") is None:
            kwargs["training"] = False
        outputs = super().__call__(*args, **kwargs)
        self._attach_masks(inputs, outputs, mask)
        if self.activity_regularizer is not None:
            first = _tree.flatten(outputs)[0]
            self._activity_losses = [self.activity_regularizer(first) / first.shape[0]]
        return outputs

    def _convert_inputs(self, inputs):
        if isinstance(inputs, torch.Tensor) and inputs.dtype == self.dtype:
            return inputs  # the common case, kept cheap

        def convert(value):
            if value is None or isinstance(value, (int, float, bool, str)):
                return value
            if not isinstance(value, torch.Tensor):
                device = next((p.device for p in self.parameters()), None)
                value = to_tensor(value, self.dtype, device)
            if value.dtype == self.dtype or not (
                value.is_floating_point() or self.casts_integer_inputs and not value.is_complex()
            ):
                return value
            return _keep_mask(value, value.to(self.dtype))

        return _tree.map_structure(convert, inputs)

    def _attach_masks(self, inputs, outputs, mask) -> None:
        out_mask = self.compute_mask(inputs, mask)
        if _tree.is_nested(outputs):
            masks = (
                out_mask
                if _tree.is_nested(out_mask)
                else [out_mask] + [None] * (len(_tree.flatten(outputs)) - 1)
            )
            for tensor, m in zip(_tree.flatten(outputs), _tree.flatten(masks)):
                set_mask(tensor, m)
        else:
            set_mask(outputs, out_mask)

    def _symbolic_call(self, *args, **kwargs):
        inputs = args[0]
        shapes = _shapes(inputs)
        self.check_input_shape(shapes)
        self._maybe_build(shapes)
        extra = {k: _shapes(v) for k, v in kwargs.items() if k in _shape_kwargs(self)}
        out_shapes = self.compute_output_shape(shapes, **extra)
        node = Node(self, args=args, kwargs=kwargs, index=len(self.inbound_nodes))
        dtype = self.dtype
        flat = []

        def make(shape):
            tensor = SymbolicTensor(shape, dtype, node=node, index=len(flat), name=self.name)
            flat.append(tensor)
            return tensor

        node.outputs = _map_shapes(make, out_shapes)
        self.inbound_nodes.append(node)
        return node.outputs

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer (without its weights).

        For a class of your own, the arguments its constructor was called with are in it
        too (those that JSON can hold), as in Keras: a cell or layer that writes no
        get_config of its own still saves and loads.
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": str(self.dtype).replace("torch.", ""),
        }
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = tuple(self.batch_input_shape)
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        recorded = self.__dict__.get("_constructor_args")
        if recorded is not None:
            config = _with_constructor_args(type(self), config, recorded)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def summary_shape(self):
        """Output shape(s) of this layer's last symbolic call, for `model.summary()`."""
        if not self.inbound_nodes:
            return None
        return _map_shapes_from_tensors(self.inbound_nodes[-1].outputs)


_INIT_SIGNATURES: dict[type, inspect.Signature | None] = {}


def _user_init_signature(cls) -> inspect.Signature | None:
    """The signature of `cls.__init__` when a class outside rnnkit defines it, else None."""
    if cls not in _INIT_SIGNATURES:
        owner = next(k for k in cls.__mro__ if "__init__" in k.__dict__)
        ours = owner.__module__.partition(".")[0] in ("rnnkit", "torch")
        _INIT_SIGNATURES[cls] = None if ours else inspect.signature(owner.__init__)
    return _INIT_SIGNATURES[cls]


def _user_arguments(cls, args, kwargs) -> dict | None:
    """`{name: value}` of a call to a user class's constructor (None for rnnkit's classes,
    or when the call does not fit the signature: then `__init__` itself will say so)."""
    signature = _user_init_signature(cls)
    if signature is None:
        return None
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return None
    recorded = {}
    for name, value in list(bound.arguments.items())[1:]:  # [0] is self
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            recorded.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                recorded[f"*{name}"] = value  # cannot be passed back by keyword
        else:
            recorded[name] = value
    return recorded


_NOT_JSON = object()


def _json_ready(value):
    """`value` as JSON holds it (numpy scalars to numbers, tuples to lists), or `_NOT_JSON`."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [_json_ready(v) for v in value]
        return _NOT_JSON if any(v is _NOT_JSON for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_ready(v) for k, v in value.items()}
        return _NOT_JSON if any(v is _NOT_JSON for v in items.values()) else items
    return _NOT_JSON


def _with_constructor_args(cls, config: dict, recorded: dict) -> dict:
    """`config` with a user class's recorded constructor arguments added (the config's own
    values win). Without `**kwargs` in its `__init__`, base keys it does not take are left
    out, so that `cls(**config)` works, as Keras does."""
    params = _user_init_signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        config = {k: v for k, v in config.items() if k in params}
    for name, value in recorded.items():
        value = _json_ready(value)
        if name not in config and value is not _NOT_JSON and not name.startswith("*"):
            config[name] = value  # (*args cannot be passed back by name: left out, refused)
    return config


def unsaved_arguments(layer, config: dict) -> list[str]:
    """The constructor arguments of a user's layer that writes no get_config of its own and
    that `config` lacks because JSON cannot hold them (an array, an object): such a layer
    cannot be rebuilt from `config`."""
    owner = next(k for k in type(layer).__mro__ if "get_config" in k.__dict__)
    if owner.__module__.partition(".")[0] != "rnnkit":
        return []  # the user's own get_config decides what rebuilds the layer
    recorded = layer.__dict__.get("_constructor_args") or {}
    return [name for name in recorded if name not in config]


def _sublayers(module) -> list:
    """The layers directly inside `module`, also through torch containers (a model's layers
    sit in a ModuleList)."""
    found = []
    for child in module.children():
        found.extend([child] if isinstance(child, Layer) else _sublayers(child))
    return found


def _has_symbolic(args, kwargs) -> bool:
    """Whether a call gets any `SymbolicTensor` (a functional-model call, not a computation)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, SymbolicTensor):
            return True
        if _tree.is_nested(value) and any(
            isinstance(t, SymbolicTensor) for t in _tree.flatten(value)
        ):
            return True
    return False


def _marks_built(build):
    """Wrap a subclass's `build` so that it records the shape and sets `built`, as Keras does."""

    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        build(self, input_shape, *args, **kwargs)
        if self._build_input_shape is None:
            self._build_input_shape = input_shape
        self.built = True

    return wrapper


def _keep_mask(source, target):
    set_mask(target, get_mask(source))
    return target


def _shapes(structure):
    """Shapes of every tensor in a nested structure, keeping the nesting."""

    def shape_of(value):
        if isinstance(value, (torch.Tensor, SymbolicTensor)):
            return tuple(value.shape)
        return value

    if isinstance(structure, (torch.Tensor, SymbolicTensor)):
        return tuple(structure.shape)
    return _tree.map_structure(shape_of, structure)


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(s is None or isinstance(s, int) for s in value)


def _map_shapes(fn, shapes):
    if _is_shape(shapes):
        return fn(shapes)
    if isinstance(shapes, list):
        return [_map_shapes(fn, s) for s in shapes]
    if isinstance(shapes, tuple):
        return tuple(_map_shapes(fn, s) for s in shapes)
    raise TypeError(f"Expected a shape or a list of shapes; got {shapes!r}.")


def _map_shapes_from_tensors(outputs):
    return _tree.map_structure(lambda t: t.shape, outputs)


_PARAM_CACHE: dict[type, frozenset] = {}


def _call_params(cls) -> frozenset:
    if cls not in _PARAM_CACHE:
        _PARAM_CACHE[cls] = frozenset(inspect.signature(cls.call).parameters)
    return _PARAM_CACHE[cls]


def _shape_kwargs(layer) -> frozenset:
    """Keyword arguments of compute_output_shape other than the input shape."""
    params = inspect.signature(layer.compute_output_shape).parameters
    return frozenset(list(params)[1:])
