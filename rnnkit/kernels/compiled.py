"""The compiled time loops (`_loops.cpp`), called through ctypes.

`pip install` builds the loops for three x86-64 levels (see `setup.py`); the best one this
CPU runs is loaded here, once, after torch (so its OpenMP threads are torch's). Where none was
built, `missing()` says why and the kernels run their per-step loops in Python.

Each wrapper takes the Python kernel's own buffers, time-major and C-contiguous, and fills
them in place; the docstrings name which hold what. `U` (`U^T` backward) goes in packed, see
`_pack`. The loops use `torch.get_num_threads()` threads (see `split_forward` in `_loops.cpp`).

Members (`rnnkit.kernels.members`): given `U` stacked `(M, H, width)`, a wrapper runs an
ensemble of M models in one loop: the batch rows are member-major (B = M * B_m), each member's
`U` is packed apart and the panels go in back to back, and the narrow `W` `(M, D, width)`,
bias `(M, width)` and GRU's `b'_h` `(M, H)` are stacked the same way.
"""

from __future__ import annotations

import ctypes
import importlib.util

import torch

# the activation codes of `_loops.cpp`
ACTIVATIONS = {"linear": 0, "tanh": 1, "sigmoid": 2, "relu": 3}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def _variants() -> list[str]:
    """Module names to try, the fastest first, for what torch reports this CPU runs."""
    capability = torch.backends.cpu.get_cpu_capability()
    names = ["_loops"]
    if capability in ("AVX2", "AVX512"):
        names.insert(0, "_loops_avx2")
    if capability == "AVX512":
        names.insert(0, "_loops_avx512")
    return names


# `rnnkit_loops_version` of the `_loops.cpp` these wrappers call: 2 passes the members count
LOOPS_VERSION = 2


def open_library(path: str) -> ctypes.CDLL:
    """One built variant of the loops, its functions' return types set. OSError for a build of
    another `_loops.cpp` (its loops take other arguments)."""
    library = ctypes.CDLL(path)
    version = getattr(library, "rnnkit_loops_version", lambda: 1)()
    if version != LOOPS_VERSION:
        raise OSError(
            f"built from an older _loops.cpp (loops version {version}, not {LOOPS_VERSION}); "
            "rebuild it: pip install -e . (or python setup.py build_ext --inplace)"
        )
    for suffix in _SUFFIX.values():
        getattr(library, f"rnnkit_packed_size_{suffix}").restype = ctypes.c_long
    return library


def _load() -> tuple[ctypes.CDLL | None, str]:
    errors = []
    for name in _variants():
        spec = importlib.util.find_spec(f"rnnkit.kernels.{name}")
        if spec is None or spec.origin is None:
            continue
        try:
            return open_library(spec.origin), name
        except OSError as error:
            errors.append(f"{name}: {error}")
    if errors:
        return None, "the compiled loops did not load (" + "; ".join(errors) + ")"
    return None, (
        "the compiled loops were not built (no C++ compiler with OpenMP at install time; "
        "reinstall rnnkit where `c++ -fopenmp` works)"
    )


LIBRARY, BUILD = _load()  # BUILD: the variant loaded, or why none was


def missing(*tensors: torch.Tensor | None) -> str | None:
    """Why the compiled loops cannot run on these tensors, or None when they can."""
    if LIBRARY is None:
        return BUILD
    if torch.compiler.is_compiling():  # torch.export / torch.compile cannot look inside ctypes
        return "traced by torch.export or torch.compile, which cannot see into the compiled loops"
    dtypes = set()
    for t in tensors:
        if t is None:
            continue
        if t.device.type != "cpu":
            return f"the compiled loops run on CPU, not {t.device.type}"
        if t.dtype not in _SUFFIX:
            return f"the compiled loops run float32 and float64, not {t.dtype}"
        dtypes.add(t.dtype)
    if len(dtypes) > 1:
        return f"the compiled loops run one dtype at a time, not {sorted(map(str, dtypes))}"
    return None


def _loop(name, buffers, mask, shape, activations, *flags, members=1) -> None:
    """Call loop `name` for the buffers' dtype: `buffers` (tensors by address, None a null
    pointer), the mask's bytes, `shape` `(T, B, H)`, the activations' codes, `flags`, the
    thread count and the members count."""
    dtype = buffers[0].dtype
    for t in buffers:  # the loops index flat memory of one dtype
        if t is not None and (not t.is_contiguous() or t.dtype != dtype):
            raise RuntimeError(f"rnnkit's {name} loop got a non-contiguous or mixed buffer")
    mask = _mask_bytes(mask)  # held here while the loop reads it
    threads = torch.get_num_threads()
    ints = (*shape, *(ACTIVATIONS[a] for a in activations), *flags, threads, members)
    addresses = [None if t is None else t.data_ptr() for t in buffers]
    addresses.append(None if mask is None else mask.data_ptr())
    _function(name, dtype, len(addresses), len(ints))(*addresses, *map(int, ints))


_FUNCTIONS: dict = {}


def _function(name, dtype, pointers: int, ints: int):
    """Loop `name` for `dtype`, its argument types declared (so ctypes converts plain ints and
    addresses itself, faster than making a ctypes object per argument)."""
    key = (LIBRARY, name, dtype)  # the tests and benchmarks swap in other builds
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = getattr(LIBRARY, f"rnnkit_{name}_{_SUFFIX[dtype]}")
        fn.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int] * ints
        fn.restype = None
        _FUNCTIONS[key] = fn
    return fn


def _mask_bytes(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A `(T, B, 1)` boolean mask as the `(T, B)` bytes the loops read."""
    if mask is None:
        return None
    return mask.reshape(mask.shape[0], mask.shape[1]).contiguous().view(torch.uint8)


def _pack(b: torch.Tensor) -> torch.Tensor:
    """`b` `(K, N)`, any strides, copied into the panels the loops' products read."""
    suffix = _SUFFIX[b.dtype]
    panels = torch.empty(getattr(LIBRARY, f"rnnkit_packed_size_{suffix}")(*b.shape), dtype=b.dtype)
    stride = [ctypes.c_long(s) for s in b.stride()]
    getattr(LIBRARY, f"rnnkit_pack_{suffix}")(
        ctypes.c_void_p(b.data_ptr()), *stride, *b.shape, ctypes.c_void_p(panels.data_ptr())
    )
    return panels


def _panels(u: torch.Tensor, transposed: bool) -> tuple[torch.Tensor, int]:
    """`U` (`U^T` with `transposed`: the backward loops') packed, and the members count: a
    stack `(M, H, width)` packs each member's matrix, the M blocks back to back."""
    if u.dim() == 3:
        blocks = [_pack(m.t() if transposed else m) for m in u.unbind(0)]
        return torch.cat(blocks), u.shape[0]
    return (_pack(u.t()) if transposed else _forward_panels(u)), 1


def _forward_panels(u: torch.Tensor) -> torch.Tensor:
    """`U` packed for a forward loop. Under `torch.inference_mode` (`predict`) the copy is kept
    on the weight until the weight changes: its version counter moves with every in-place
    update (optimizer steps, `set_weights`, loading). Packing a 256-unit LSTM's `U` takes
    ~40 µs, a tenth of predicting one 20-step sequence."""
    if not torch.is_inference_mode_enabled():
        return _pack(u)
    key = (u._version, u.data_ptr(), u.stride())
    hit = getattr(u, "_rnnkit_panels", None)
    if hit is None or hit[0] != key:
        with torch.inference_mode(False):  # an ordinary tensor, kept across calls
            hit = (key, _pack(u))
        u._rnnkit_panels = hit
    return hit[1]


# Input features up to which the loops make x W + b, dW and db themselves (`narrow`) instead
# of torch's skinny GEMMs over all steps. Measured forward and backward on Zen 4, H 50-128:
# SimpleRNN 4-14% faster with 1 feature, even at 8-16, 10% slower at 32; GRU 5-22% faster up
# to 8; LSTM 0-3%.
NARROW_INPUTS = 8


def narrow(x, w, bias, grads=None) -> tuple:
    """The loops' narrow-input buffers: `x` `(T*B, D)` time-major, `W` `(D, width)`, `b`
    `(width,)` or None, and `grads` `(B, D + 1, width)` zeros (backward: they gather each
    batch row's `[dW; db]`). The loops then make `x W + b` (forward) and `dW`, `db`
    (backward) themselves; see "narrow inputs" in `_loops.cpp`."""
    return (x, w.contiguous(), None if bias is None else bias.contiguous(), grads), x.shape[-1]


NO_INPUTS = ((None, None, None, None), 0)  # the buffers hold x W + b already


def narrow_fits(x) -> bool:
    """Whether the loops make `x W + b` for `x` `(..., D)` (and gather dW, db in backward)."""
    return x.shape[-1] <= NARROW_INPUTS


def narrow_gradients(x, w, batch: int, needed: bool) -> tuple:
    """A backward loop's `inputs` for `x` `(T*B, D)` and `W` `(D, width)`, and the zeros
    `(B, D + 1, width)` they gather `[dW; db]` in; `(NO_INPUTS, None)` where the loops do
    not (too many features, or neither gradient `needed`)."""
    if not needed or not narrow_fits(x):
        return NO_INPUTS, None
    per_row = x.new_zeros(batch, x.shape[-1] + 1, w.shape[-1])
    return narrow(x, w, None, per_row), per_row


def narrow_sums(per_row, needs_w=True, needs_b=True) -> tuple:
    """`dW` `(D, width)` and `db` `(width,)` from `narrow_gradients`' per-row sums (None for
    one not needed)."""
    grad_w, grad_b = per_row.sum(0).split([per_row.shape[1] - 1, 1])
    return (grad_w if needs_w else None), (grad_b[0] if needs_b else None)


def simple_rnn_forward(a, h, u, mask, activation: str, inputs=NO_INPUTS) -> None:
    """`a`, `h`: `(T + 1, B, H)`; `a[1:]` holds `x W + b` (or gets it from `inputs`, see
    `narrow`) and becomes the activations, `h` (which is `a` when unmasked) the states; row 0
    of both is `h_0`. `u`: `(H, H)`, or `(M, H, H)` for M members."""
    shape = (a.shape[0] - 1, *a.shape[1:])
    narrow_buffers, features = inputs
    panels, members = _panels(u, False)
    buffers = (a, h, panels, *narrow_buffers)
    _loop("simple_rnn_forward", buffers, mask, shape, (activation,), features, members=members)


def simple_rnn_backward(grad, a, u, mask, activation: str, accumulate: bool, inputs=NO_INPUTS):
    """`grad`: `(T + 1, B, H)` from `simple_rnn.state_gradients`; rows 1.. become `dz_t` and
    row 0 `dL/dh_0` (added to the output's gradients, or written: `accumulate`). `a`: the
    activations from the forward loop. `u`: `(H, H)` (or `(M, H, H)`). `inputs` (`narrow`):
    gather dW, db."""
    shape = (a.shape[0] - 1, *a.shape[1:])
    narrow_buffers, features = inputs
    panels, members = _panels(u, True)
    buffers = (grad, a, panels, *narrow_buffers)
    flags = (accumulate, features)
    _loop("simple_rnn_backward", buffers, mask, shape, (activation,), *flags, members=members)


def gru_forward(zrh, n, states, diff, u, bias_h, mask, act, recurrent, inputs=NO_INPUTS):
    """`zrh`: `(T, B, 3H)` holding `x W + [b_zr + b'_zr, b_h]` (or getting it from `inputs`,
    `narrow`), which becomes `[z, r, h_{t-1} U_h + b'_h]` (`bias_h`: `b'_h`, or None); `n`:
    `(T, B, H)` gets the candidates; `states`: `(T + 1, B, H)` with row 0 `h_0`; `diff`:
    `(T, B, H)` gets `h_{t-1} - n_t`. `u`: `(H, 3H)`, or `(M, H, 3H)` with `bias_h` `(M, H)`."""
    bias_h = None if bias_h is None else bias_h.contiguous()
    narrow_buffers, features = inputs
    panels, members = _panels(u, False)
    buffers = (zrh, n, states, diff, panels, bias_h, *narrow_buffers)
    _loop("gru_forward", buffers, mask, n.shape, (act, recurrent), features, members=members)


def gru_backward(grad, d, dn, zrh, n, diff, u, mask, act, recurrent, accumulate, inputs=NO_INPUTS):
    """`grad`: `(T + 1, B, H)` as for SimpleRNN; `d`: `(T, B, 3H)` gets `[dz', dr', dn' r]`
    and `dn`: `(T, B, H)` `dn'`; the rest are the forward loop's buffers. `inputs` (`narrow`):
    gather dW, db from `[dz', dr', dn']`."""
    narrow_buffers, features = inputs
    panels, members = _panels(u, True)
    buffers = (grad, d, dn, zrh, n, diff, panels, *narrow_buffers)
    flags = (accumulate, features)
    _loop("gru_backward", buffers, mask, n.shape, (act, recurrent), *flags, members=members)


def lstm_forward(gates, h, c, new_c, squashed, u, mask, act, recurrent, inputs=NO_INPUTS):
    """`gates`: `(T, B, 4H)` holding `x W + b` (or getting it from `inputs`, `narrow`), which
    becomes `[i, f, g, o]`; `h`, `c`: `(T + 1, B, H)` with row 0 `h_0`, `c_0`; `new_c`: `c'`
    before the mask (`c` itself when unmasked); `squashed`: `(T, B, H)` gets `act(c')`. `u`:
    `(H, 4H)`, or `(M, H, 4H)`."""
    narrow_buffers, features = inputs
    panels, members = _panels(u, False)
    buffers = (gates, h, c, new_c, squashed, panels, *narrow_buffers)
    codes = (act, recurrent)
    _loop("lstm_forward", buffers, mask, squashed.shape, codes, features, members=members)


def lstm_backward(
    gh, gc, dz, gates, c, squashed, u, mask, act, recurrent, accumulate, inputs=NO_INPUTS
):
    """`gh`: `(T + 1, B, H)` as `grad` for SimpleRNN; `gc`: `(B, H)`, `dL/dc_T` (zeros if
    none), which becomes `dL/dc_0`; `dz`: `(T, B, 4H)` gets the gates' pre-activation
    gradients; the rest are the forward loop's buffers. `inputs` (`narrow`): gather dW, db."""
    narrow_buffers, features = inputs
    panels, members = _panels(u, True)
    buffers = (gh, gc, dz, gates, c, squashed, panels, *narrow_buffers)
    flags, codes = (accumulate, features), (act, recurrent)
    _loop("lstm_backward", buffers, mask, squashed.shape, codes, *flags, members=members)
