"""Keras-named optimizers whose updates equal Keras 3's, run by ``torch.optim``.

Each optimizer keeps Keras' hyperparameters, defaults and order of operations:

1. clip the gradients (``clipnorm`` per tensor, ``global_clipnorm`` over all, or
   ``clipvalue``), in place on ``param.grad``;
2. decoupled weight decay ``w -= w * weight_decay * lr`` (Keras applies it this way for
   every optimizer; torch's own ``weight_decay`` is an L2 term and is left at 0);
3. the update itself, by a ``torch.optim.Optimizer``: the stock ``torch.optim.Adadelta``,
   whose formula is Keras' (only the defaults differ), or a small subclass whose ``step()``
   is Keras' formula where torch's differs (SGD with momentum, RMSprop, Adagrad, Adamax)
   or rounds differently (Adam/AdamW, Nadam: Keras computes ``1 - beta**t`` and the like in
   float32, torch in float64, a 1e-5 relative difference in the first steps);
4. ``iterations += 1``. A schedule is evaluated at ``iterations`` before the update.

Example:
    >>> import torch
    >>> from rnnkit import optimizers
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = optimizers.get("sgd")
    >>> opt.build([w])
    >>> (w**2).sum().backward()
    >>> opt.step()
    >>> w.data, opt.iterations
    (tensor([ 0.9800, -1.9600]), 1)
"""

import math
import numbers

import numpy as np
import torch
from torch.autograd.graph import increment_version

from rnnkit import schedules
from rnnkit.losses import _snake_case


def _is_number(value) -> bool:
    """A real number, numpy's included: `np.float32(1e-3)` from a sweep is a learning rate."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_range(owner, name, value, low, high=None, high_open=False):
    """ValueError unless ``low <= value <= high`` (or ``< high`` when ``high_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        upper = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
        raise ValueError(f"{owner}: {name} must be a number >= {low}{upper}, got {value!r}.")


def _check_learning_rate(owner, learning_rate):
    if isinstance(learning_rate, dict):
        learning_rate = schedules.deserialize(learning_rate)
    if isinstance(learning_rate, schedules.LearningRateSchedule) or callable(learning_rate):
        return learning_rate
    if not _is_number(learning_rate):
        raise TypeError(
            f"{owner}: learning_rate must be a float, a schedule from rnnkit.schedules or a "
            f"callable, got {type(learning_rate).__name__}: {learning_rate!r}."
        )
    if not learning_rate >= 0:
        raise ValueError(
            f"{owner}: learning_rate must be >= 0, got {learning_rate!r}. "
            "Use e.g. learning_rate=1e-3."
        )
    return float(learning_rate)


# --------------------------------------------------------------------------- Keras-formula steps


def _scalar(value, like):
    """A 0-d tensor in ``like``'s dtype: Keras does its per-step scalar math in that dtype."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _next_step(group):
    """Count steps per param group, like Keras' single ``iterations`` counter."""
    group["step"] = group.get("step", 0) + 1
    return group["step"]


class _KerasSGD(torch.optim.Optimizer):
    """Keras SGD: ``m = momentum * m - lr * g``; ``w += m`` (Nesterov:
    ``w += momentum * m - lr * g``).

    torch.optim.SGD keeps ``buf = momentum * buf + g`` and steps ``w -= lr * buf``; the two
    agree only while ``lr`` is constant, because Keras folds each step's ``lr`` into ``m``.
    """

    def __init__(self, params, lr, momentum, nesterov):
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov})

    def add_slots(self, p, group):
        if group["momentum"] != 0 and "momentum" not in self.state[p]:
            self.state[p]["momentum"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if mu == 0:
                    p.add_(g, alpha=-lr)
                    continue
                self.add_slots(p, group)
                m = self.state[p]["momentum"]
                m.mul_(mu).add_(g, alpha=-lr)
                if group["nesterov"]:
                    p.add_(g, alpha=-lr).add_(m, alpha=mu)
                else:
                    p.add_(m)


class _KerasRMSprop(torch.optim.Optimizer):
    """Keras RMSprop: ``v = rho * v + (1 - rho) * g**2``; ``w -= lr * g / sqrt(v + eps)``.

    Centered: ``sqrt(v - a**2 + eps)`` with ``a`` the running mean of ``g``. Momentum:
    ``m = momentum * m + lr * g / sqrt(...)``; ``w -= m``. torch.optim.RMSprop puts eps
    outside the root (``sqrt(v) + eps``) and ``lr`` outside the momentum buffer.
    """

    def __init__(self, params, lr, rho, momentum, eps, centered):
        defaults = {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps, "centered": centered}
        super().__init__(params, defaults)

    def add_slots(self, p, group):
        state = self.state[p]
        if not state:
            state["velocity"] = torch.zeros_like(p)
            if group["centered"]:
                state["average_gradient"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho, mu = group["lr"], group["rho"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.add_slots(p, group)
                g, state = p.grad, self.state[p]
                v = state["velocity"]
                v.mul_(rho).addcmul_(g, g, value=1 - rho)
                denominator = v + group["eps"]
                if group["centered"]:
                    a = state["average_gradient"]
                    a.mul_(rho).add_(g, alpha=1 - rho)
                    denominator -= a * a
                increment = g * lr / torch.sqrt(denominator)
                if mu > 0:
                    state["momentum"].mul_(mu).add_(increment)
                    p.sub_(state["momentum"])
                else:
                    p.sub_(increment)


class _KerasAdagrad(torch.optim.Optimizer):
    """Keras Adagrad: ``acc += g**2`` (``acc`` starts at ``initial_accumulator_value``);
    ``w -= lr * g / sqrt(acc + eps)``. torch.optim.Adagrad uses ``sqrt(acc) + eps``."""

    def __init__(self, params, lr, initial_accumulator_value, eps):
        defaults = {"lr": lr, "initial_accumulator_value": initial_accumulator_value, "eps": eps}
        super().__init__(params, defaults)

    def add_slots(self, p, group):
        if not self.state[p]:
            self.state[p]["accumulator"] = torch.full_like(p, group["initial_accumulator_value"])

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.add_slots(p, group)
                g, state = p.grad, self.state[p]
                acc = state["accumulator"]
                acc.addcmul_(g, g)
                p.sub_(g * group["lr"] / torch.sqrt(acc + group["eps"]))


class _KerasAdam(torch.optim.Optimizer):
    """Keras Adam: ``m = b1 * m + (1 - b1) * g``; ``v = b2 * v + (1 - b2) * g**2``;
    ``w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)`` (AMSGrad: the running
    max of ``v``). torch.optim.Adam adds eps after the bias correction,
    ``sqrt(v) / sqrt(1 - b2**t) + eps``, and computes ``1 - b**t`` in float64.

    Where it fits (see `_fused_adam_fits`) the update runs as torch's fused Adam kernel, one
    pass over each tensor (7-11x faster than the op-by-op update on CPU), given the learning
    rate and eps that make its formula Keras': with ``c1 = 1 - b1**t`` and ``c2 = 1 - b2**t``
    in float64 as the kernel has them, ``lr' = alpha * c1 / sqrt(c2)`` and
    ``eps' = eps / sqrt(c2)`` turn ``lr' / c1 * m / (sqrt(v) / sqrt(c2) + eps')`` into
    ``alpha * m / (sqrt(v) + eps)``, where ``alpha`` is Keras' float32 step size.
    """

    def __init__(self, params, lr, beta_1, beta_2, eps, amsgrad):
        defaults = {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "eps": eps, "amsgrad": amsgrad}
        super().__init__(params, defaults)

    @staticmethod
    def _slot_names(group):
        return ["momentum", "velocity"] + (["velocity_hat"] if group["amsgrad"] else [])

    def add_slots(self, p, group):
        state = self.state[p]
        for name in self._slot_names(group):
            if name not in state:
                state[name] = torch.zeros_like(p)
            elif state[name].stride() != p.stride():  # e.g. loaded from a file
                state[name] = torch.empty_like(p).copy_(state[name])

    @torch.no_grad()
    def step(self, closure=None):
        self.update()

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._plans = {}  # the slots are new tensors

    def update(self):
        """`step()` without torch.optim's wrapper around it (profiling hooks, a no-grad
        context): `Optimizer.step` calls this, under no_grad, once per batch."""
        plans = self.__dict__.setdefault("_plans", {})
        for group in self.param_groups:
            params = group["params"]
            grads = [p.grad for p in params]
            if any(g is None for g in grads):  # (rare) some got no gradient: update the rest
                params = [p for p, g in zip(params, grads) if g is not None]
                grads = [g for g in grads if g is not None]
            if not params:
                continue
            b1, b2, t = group["beta_1"], group["beta_2"], _next_step(group)
            key = (id(group), *map(id, params))
            plan = plans.get(key)
            if plan is None:  # the slots and whether the fused kernel fits, once per set
                plan = plans[key] = self._plan(group, params)
            m, v, v_hat, fused, layout = plan
            alpha = _adam_step_size(group["lr"], b1, b2, t, params[0])
            if fused and _laid_out(grads, *layout):
                c1, c2_root = 1 - b1**t, math.sqrt(1 - b2**t)
                steps = [torch.full((), float(t), device=params[0].device)] * len(params)
                if not isinstance(alpha, torch.Tensor):  # a numpy scalar of the dtype
                    lr = float(alpha * alpha.dtype.type(c1 / c2_root))
                else:
                    lr = float(alpha * (c1 / c2_root))  # in the weights' dtype, as Keras
                torch._fused_adam_(
                    params,
                    grads,
                    m,
                    v,
                    v_hat,
                    steps,
                    lr=lr,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=0.0,
                    eps=group["eps"] / c2_root,
                    amsgrad=group["amsgrad"],
                    maximize=False,
                )
                # The fused kernel writes the weights without moving their version counters,
                # which tell the kernels' cached weight layouts (predict) that they changed.
                increment_version(params)
                continue
            # The per-tensor formula below, run as one op per line for all tensors at once
            # (the same element-wise operations, so the same numbers, without a Python loop):
            #   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g
            #   w -= m * alpha / (sqrt(v) + eps)
            torch._foreach_mul_(m, b1)
            torch._foreach_add_(m, grads, alpha=1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_add_(v, torch._foreach_mul(grads, grads), alpha=1 - b2)
            if group["amsgrad"]:
                torch._foreach_maximum_(v_hat, v)
                v = v_hat
            denominator = torch._foreach_sqrt(v)
            torch._foreach_add_(denominator, group["eps"])
            alpha = torch.as_tensor(alpha, device=params[0].device)
            update = torch._foreach_mul(m, alpha)
            torch._foreach_div_(update, denominator)
            torch._foreach_sub_(params, update)

    def _plan(self, group, params) -> tuple:
        """`(m, v, v_hat, fused, layout)` for updating `params`: their slots (v_hat empty
        without AMSGrad), whether torch's fused kernel can update them, and the device,
        dtype and strides each step's gradients must have for it."""
        names = self._slot_names(group)
        for p in params:
            self.add_slots(p, group)
        m, v, *v_hat = ([self.state[p][name] for p in params] for name in names)
        v_hat = v_hat[0] if v_hat else []
        fused = _fused_adam_fits(params, m, v, *([v_hat] if v_hat else []))
        first = params[0]
        return m, v, v_hat, fused, (first.device, first.dtype, [p.stride() for p in params])


def _adam_step_size(lr, b1, b2, t, like):
    """Keras' ``lr * sqrt(1 - b2**t) / (1 - b1**t)``, each operation in the weights' dtype as
    Keras computes it on torch (0-d tensors): a numpy scalar of that dtype (a 0-d tensor for
    a dtype numpy lacks).

    A dozen scalar ops a step cost a tenth of a small model's step, so they run for a block
    of the next `_STEP_SIZES` steps at once: the powers as numpy scalars (torch's 0-d `pow`
    rounds as numpy's does; its vectorised one does not), the rest as torch ops on the
    block (its 0-d `sqrt` is the vectorised one, not numpy's correctly rounded one). The
    tests hold every step's number to the 0-d ops.
    """
    kind = _NUMPY_SCALARS.get(like.dtype)
    if kind is None:  # a dtype numpy lacks: the 0-d ops themselves, on the CPU
        like = torch.empty((), dtype=like.dtype)
        one, t_ = _scalar(1.0, like), _scalar(t, like)
        b1_power, b2_power = _scalar(b1, like) ** t_, _scalar(b2, like) ** t_
        return _scalar(lr, like) * torch.sqrt(one - b2_power) / (one - b1_power)
    key = (lr, b1, b2, like.dtype, t // _STEP_SIZES)
    cached = _step_sizes.get("block")
    if cached is None or cached[0] != key:
        steps = [kind(i) for i in range(key[-1] * _STEP_SIZES, (key[-1] + 1) * _STEP_SIZES)]
        b1_power = torch.from_numpy(np.array([kind(b1) ** i for i in steps], dtype=kind))
        b2_power = torch.from_numpy(np.array([kind(b2) ** i for i in steps], dtype=kind))
        one = torch.ones((), dtype=like.dtype)
        lr_ = torch.full((_STEP_SIZES,), lr, dtype=like.dtype)
        block = lr_ * torch.sqrt(one - b2_power) / (one - b1_power)
        cached = _step_sizes["block"] = (key, block.numpy())
    return cached[1][t % _STEP_SIZES]  # a numpy scalar of the dtype: no tensor op to read


_STEP_SIZES = 64
_step_sizes: dict = {}  # the last block computed: optimizers in turn recompute theirs
_NUMPY_SCALARS = {torch.float32: np.float32, torch.float64: np.float64}


def _has_step_hooks(torch_optimizer) -> bool:
    """Whether hooks wait on this torch optimizer's step() (its own or torch's global ones)."""
    from torch.optim import optimizer as torch_optim

    return bool(
        getattr(torch_optimizer, "_optimizer_step_pre_hooks", None)
        or getattr(torch_optimizer, "_optimizer_step_post_hooks", None)
        or getattr(torch_optim, "_global_optimizer_pre_hooks", None)
        or getattr(torch_optim, "_global_optimizer_post_hooks", None)
    )


def _laid_out(grads, device, dtype, strides) -> bool:
    """Whether each gradient is dense, on `device`, of `dtype` and laid out as its weight
    (the fused kernel reads them as flat memory)."""
    for g, stride in zip(grads, strides):
        if g.dtype != dtype or g.device != device or g.is_sparse or g.stride() != stride:
            return False
    return True


def _fused_adam_fits(params, *tensor_lists) -> bool:
    """Whether torch's fused Adam kernel can update `params`: one device (CPU or CUDA) and
    dtype, and, since the kernel reads each tensor as flat memory, every gradient and state
    tensor laid out like its parameter, which is dense (contiguous, or a transposed matrix)."""
    first = params[0]
    if first.device.type not in ("cpu", "cuda") or not first.is_floating_point():
        return False
    kind = (first.device, first.dtype)
    layout = [p.stride() for p in params]
    for p in params:
        if (p.device, p.dtype) != kind or p.is_sparse:
            return False
        if not (p.is_contiguous() or (p.dim() == 2 and p.t().is_contiguous())):
            return False
    for tensors in tensor_lists:
        if [t.stride() for t in tensors] != layout:
            return False
        if any((t.device, t.dtype) != kind or t.is_sparse for t in tensors):
            return False
    return True


class _KerasNadam(torch.optim.Optimizer):
    """Keras Nadam (Dozat): momentum schedule ``u_t = b1 * (1 - 0.5 * 0.96**t)``;
    ``m_hat = u_{t+1} * m / (1 - prod u_1..u_{t+1}) + (1 - u_t) * g / (1 - prod u_1..u_t)``;
    ``w -= lr * m_hat / (sqrt(v / (1 - b2**t)) + eps)``.

    torch.optim.NAdam(momentum_decay=1.0) has this formula, but computes the schedule in
    float64 where Keras uses float32.
    """

    def __init__(self, params, lr, beta_1, beta_2, eps):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "eps": eps})

    def add_slots(self, p, group):
        if not self.state[p]:
            self.state[p]["momentum"] = torch.zeros_like(p)
            self.state[p]["velocity"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2, t = group["beta_1"], group["beta_2"], _next_step(group)
            x = params[0]
            one, decay = _scalar(1.0, x), _scalar(0.96, x)
            u_t = _scalar(b1, x) * (one - 0.5 * decay ** _scalar(t, x))
            u_next = _scalar(b1, x) * (one - 0.5 * decay ** _scalar(t + 1, x))
            u_product = _scalar(group.get("u_product", 1.0), x) * u_t
            u_product_next = u_product * u_next
            group["u_product"] = float(u_product)
            b2_power = _scalar(b2, x) ** _scalar(t, x)
            lr = _scalar(group["lr"], x)
            for p in params:
                self.add_slots(p, group)
                g, state = p.grad, self.state[p]
                m, v = state["momentum"], state["velocity"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).add_(g * g, alpha=1 - b2)
                m_hat = m * u_next / (one - u_product_next) + g * (one - u_t) / (one - u_product)
                v_hat = v / (one - b2_power)
                p.sub_(m_hat * lr / (torch.sqrt(v_hat) + group["eps"]))


class _KerasAdamax(torch.optim.Optimizer):
    """Keras Adamax: ``m = b1 * m + (1 - b1) * g``; ``u = max(b2 * u, |g|)``;
    ``w -= lr * m / ((u + eps) * (1 - b1**t))``. torch.optim.Adamax puts eps inside the
    max: ``u = max(b2 * u, |g| + eps)``."""

    def __init__(self, params, lr, beta_1, beta_2, eps):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "eps": eps})

    def add_slots(self, p, group):
        if not self.state[p]:
            self.state[p]["momentum"] = torch.zeros_like(p)
            self.state[p]["norm"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2, t = group["beta_1"], group["beta_2"], _next_step(group)
            x = params[0]
            bias_correction = _scalar(1.0, x) - _scalar(b1, x) ** _scalar(t, x)
            lr = _scalar(group["lr"], x)
            for p in params:
                self.add_slots(p, group)
                g, state = p.grad, self.state[p]
                m, u = state["momentum"], state["norm"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                torch.maximum(u * b2, torch.abs(g), out=u)
                p.sub_(m * lr / ((u + group["eps"]) * bias_correction))


def _add_slots(torch_optimizer):
    """Every weight's slots (Adam's moments, ...), made at build as Keras makes its optimizer
    variables, so that a step only updates them. torch's own optimizers (Adadelta) make
    theirs on their first step."""
    add = getattr(torch_optimizer, "add_slots", None)
    if add is None:
        return
    for group in torch_optimizer.param_groups:
        for p in group["params"]:
            add(p, group)


# --------------------------------------------------------------------------- base class


class Optimizer:
    """Base class: Keras hyperparameters, clipping and weight decay around a torch.optim step.

    Args:
        learning_rate: A float >= 0, a schedule from ``rnnkit.schedules`` (called with
            ``iterations``), or a callable taking no arguments.
        weight_decay: If set, ``w -= w * weight_decay * lr`` before each update.
        clipnorm: Clip each gradient tensor to this L2 norm.
        clipvalue: Clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: Clip all gradients together to this global L2 norm.
        name: Name of the optimizer.

    Use: ``opt.build(model.parameters())`` once, then per batch ``opt.zero_grad()``,
    ``loss.backward()``, ``opt.step()``. Subclasses implement ``_make_torch_optimizer``.
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        name=None,
    ):
        owner = type(self).__name__
        self._learning_rate = _check_learning_rate(owner, learning_rate)
        for arg, value in [
            ("weight_decay", weight_decay),
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ]:
            if value is not None:
                _check_range(owner, arg, value, 0)
        clip_args = {
            "clipnorm": clipnorm,
            "clipvalue": clipvalue,
            "global_clipnorm": global_clipnorm,
        }
        if sum(v is not None for v in clip_args.values()) > 1:
            raise ValueError(
                f"{owner}: set at most one of clipnorm, clipvalue and global_clipnorm, got "
                + ", ".join(f"{k}={v}" for k, v in clip_args.items())
                + "."
            )
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or _snake_case(owner)
        self.iterations = 0
        self.params = None
        self.torch_optimizer = None
        self._pending_state = None

    # -- subclass hooks

    def _make_torch_optimizer(self, params):
        """The torch.optim optimizer that performs the update (lr is set before each step)."""
        raise NotImplementedError

    # -- learning rate

    @property
    def learning_rate(self):
        """The learning rate the next update will use, as a float."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        return float(lr()) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule) and not (
            isinstance(value, schedules.LearningRateSchedule)
        ):
            raise TypeError(
                f"{type(self).__name__}: this optimizer follows a learning-rate schedule, so "
                "its learning rate cannot be set to a number. Create it with a float "
                "learning_rate to change the rate during training."
            )
        self._learning_rate = _check_learning_rate(type(self).__name__, value)

    # -- building and stepping

    @property
    def built(self):
        return self.params is not None

    def build(self, params):
        """Attach the optimizer to the parameters it updates (e.g. ``model.parameters()``)."""
        params = list(params)
        if self.built:
            if [id(p) for p in params] != [id(p) for p in self.params]:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' is already built for other "
                    "parameters. Create a new optimizer for a new set of parameters."
                )
            return
        if not params:
            raise ValueError(
                f"{type(self).__name__}.build: got no parameters. Pass the tensors to train, "
                "e.g. opt.build(model.parameters())."
            )
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor) or not p.is_leaf or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}.build: parameter {i} must be a leaf torch tensor "
                    f"with requires_grad=True (e.g. torch.nn.Parameter), got "
                    f"{type(p).__name__}."
                )
        # All or nothing: everything is made in locals and `self.params`, which `built` reads,
        # is set last, so a Ctrl-C anywhere in here leaves the optimizer unbuilt (the next fit
        # builds it afresh, a save skips it) instead of built without its torch optimizer.
        torch_optimizer = self._make_torch_optimizer(params)
        _add_slots(torch_optimizer)
        pending = self._pending_state
        if pending is not None:
            torch_optimizer.load_state_dict(pending["torch_optimizer"])
        self.torch_optimizer = torch_optimizer
        if pending is not None:
            self._restore_counters(pending)
        self.params = params
        self._pending_state = None

    @torch.no_grad()
    def step(self):
        """Apply one update from the parameters' ``.grad``: clip, decay, update, count."""
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' is not built. Call "
                "opt.build(model.parameters()) before opt.step()."
            )
        grads = [p.grad for p in self.params]
        if all(g is None for g in grads):
            raise ValueError(
                f"{type(self).__name__}.step: no parameter has a gradient. Call "
                "loss.backward() before opt.step()."
            )
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            self._clip_gradients([g for g in grads if g is not None])
        lr = self.learning_rate
        if self.weight_decay:
            for p in self.params:
                if p.grad is not None:
                    p.mul_(1 - self.weight_decay * lr)
        for group in self.torch_optimizer.param_groups:
            group["lr"] = lr
        # rnnkit's own update where it has one: torch.optim's step() wraps it in profiling
        # hooks that cost more than a small model's whole update. Step hooks registered on
        # the torch optimizer (or torch's global ones) still get its step().
        opt = self.torch_optimizer
        update = getattr(opt, "update", None)
        if update is None or _has_step_hooks(opt):
            opt.step()
        else:
            update()
        self.iterations += 1

    def apply_gradients(self, grads_and_vars=None):
        """Keras-style step. Without arguments, uses ``.grad`` (same as ``step()``).

        Args:
            grads_and_vars: Optional ``[(grad, param), ...]``. Builds the optimizer on
                these params on first use. Each ``param.grad`` is set to ``grad``; built
                parameters that are not listed get ``.grad = None`` and stay unchanged.

        Returns:
            ``iterations`` after the update.
        """
        if grads_and_vars is not None:
            pairs = list(grads_and_vars)
            if not self.built:
                self.build([p for _, p in pairs])
            given = {id(p) for _, p in pairs}
            known = {id(p) for p in self.params}
            if not given <= known:
                raise ValueError(
                    f"{type(self).__name__}.apply_gradients: got parameters this optimizer "
                    "was not built for. Build a new optimizer for new parameters."
                )
            for p in self.params:
                if id(p) not in given:
                    p.grad = None
            for g, p in pairs:
                p.grad = None if g is None else torch.as_tensor(g).to(p).detach().clone()
        self.step()
        return self.iterations

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of the built parameters."""
        if not self.built:
            return
        if not set_to_none:
            self.torch_optimizer.zero_grad(set_to_none=False)
            return
        for p in self.params:  # as torch's zero_grad(), without its profiling hooks
            p.grad = None

    def _clip_gradients(self, grads):
        if self.clipnorm:
            for g in grads:
                norm = torch.sqrt(torch.sum(torch.square(g)))
                g.mul_(self.clipnorm).div_(torch.clamp(norm, min=self.clipnorm))
        elif self.global_clipnorm:
            norm = torch.sqrt(sum(torch.sum(torch.square(g)) for g in grads))
            # min(1/norm, 1/clip) * clip is 1 when under the limit; the (norm - norm)
            # term turns an inf/nan norm into a nan scale, as in Keras.
            scale = self.global_clipnorm * torch.clamp(1.0 / norm, max=1.0 / self.global_clipnorm)
            scale = scale + (norm - norm)
            for g in grads:
                g.mul_(scale)
        elif self.clipvalue:
            for g in grads:
                g.clamp_(-self.clipvalue, self.clipvalue)

    # -- saving and restoring

    def state_dict(self):
        """Everything needed to resume: ``iterations``, the learning rate and torch's state."""
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}.state_dict: the optimizer has no state before "
                "build(). Call opt.build(model.parameters()) first."
            )
        lr = self._learning_rate
        return {
            "optimizer": type(self).__name__,
            "iterations": self.iterations,
            "learning_rate": lr if isinstance(lr, float) else None,
            "torch_optimizer": self.torch_optimizer.state_dict(),
        }

    def load_state_dict(self, state):
        """Restore a ``state_dict()``. Before ``build()`` the state is kept until build."""
        expected = {"optimizer", "iterations", "learning_rate", "torch_optimizer"}
        if not isinstance(state, dict) or set(state) != expected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected a dict from "
                f"opt.state_dict() with keys {sorted(expected)}, got "
                f"{sorted(state) if isinstance(state, dict) else type(state).__name__}."
            )
        if state["optimizer"] != type(self).__name__:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state was saved by "
                f"{state['optimizer']}. Create a {state['optimizer']} to load it."
            )
        if not self.built:
            self._pending_state = state
            return
        self.torch_optimizer.load_state_dict(state["torch_optimizer"])
        self._restore_counters(state)

    def _restore_counters(self, state):
        self.iterations = int(state["iterations"])
        if state["learning_rate"] is not None and isinstance(self._learning_rate, float):
            self._learning_rate = float(state["learning_rate"])

    def get_config(self):
        """Hyperparameters as a dict (Keras' key names); ``from_config`` rebuilds."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    # Keras configs carry these too; their default values mean "feature off".
    _KERAS_ONLY_DEFAULTS = {
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
    }

    @classmethod
    def from_config(cls, config):
        """Build from ``get_config()`` output, or from a Keras optimizer config."""
        config = dict(config)
        for key, default in cls._KERAS_ONLY_DEFAULTS.items():
            if key in config and config.pop(key) != default:
                raise ValueError(
                    f"{cls.__name__}.from_config: {key} is not supported by rnnkit; "
                    f"it must be {default!r} (or absent)."
                )
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, learning_rate={self._learning_rate!r})"


# --------------------------------------------------------------------------- optimizers


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, Keras formula (see _KerasSGD).

    Args:
        learning_rate: Step size (default 0.01).
        momentum: In [0, 1]; 0 is plain SGD.
        nesterov: Use Nesterov momentum.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        _check_range("SGD", "momentum", momentum, 0, 1)
        self.momentum = momentum
        self.nesterov = nesterov

    def _make_torch_optimizer(self, params):
        return _KerasSGD(params, self.learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class _MomentOptimizer(Optimizer):
    """Shared by Adam, Adamax and Nadam: two moment decays and an epsilon, checked and kept
    the same way; the subclass names the torch optimizer that holds its Keras formula."""

    torch_class: type

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        _check_range(owner, "beta_1", beta_1, 0, 1, high_open=True)
        _check_range(owner, "beta_2", beta_2, 0, 1, high_open=True)
        _check_range(owner, "epsilon", epsilon, 0)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _make_torch_optimizer(self, params):
        return self.torch_class(params, self.learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class Adam(_MomentOptimizer):
    """Adam, Keras formula (see _KerasAdam).

    Args:
        learning_rate: Step size (default 0.001).
        beta_1: Decay of the first-moment average.
        beta_2: Decay of the second-moment average.
        epsilon: Added to ``sqrt(v)``; Keras' default 1e-7.
        amsgrad: Use the running maximum of ``v``.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        **kwargs,
    ):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = amsgrad

    def _make_torch_optimizer(self, params):
        return _KerasAdam(
            params, self.learning_rate, self.beta_1, self.beta_2, self.epsilon, self.amsgrad
        )

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004), as Keras' AdamW.

    Args:
        learning_rate: Step size (default 0.001).
        weight_decay: Decay rate, ``w -= w * weight_decay * lr`` before each update.
        beta_1, beta_2, epsilon, amsgrad: As for ``Adam``.
        clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        if weight_decay is None:
            raise ValueError(
                "AdamW: weight_decay must be a float, got None. Use Adam for no decay."
            )
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop, Keras formula with eps inside the square root (see _KerasRMSprop).

    Args:
        learning_rate: Step size (default 0.001).
        rho: Decay of the squared-gradient average.
        momentum: In [0, 1]; momentum of the scaled steps.
        epsilon: Added to the average before the square root.
        centered: Divide by an estimate of the variance instead of the second moment.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        _check_range("RMSprop", "rho", rho, 0, 1)
        _check_range("RMSprop", "momentum", momentum, 0, 1)
        _check_range("RMSprop", "epsilon", epsilon, 0)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _make_torch_optimizer(self, params):
        return _KerasRMSprop(
            params, self.learning_rate, self.rho, self.momentum, self.epsilon, self.centered
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    """Adagrad, Keras formula ``w -= lr * g / sqrt(acc + eps)`` (see _KerasAdagrad).

    Args:
        learning_rate: Step size (default 0.001).
        initial_accumulator_value: Starting value of the squared-gradient sum (0.1).
        epsilon: Added inside the square root.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        _check_range("Adagrad", "initial_accumulator_value", initial_accumulator_value, 0)
        _check_range("Adagrad", "epsilon", epsilon, 0)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _make_torch_optimizer(self, params):
        return _KerasAdagrad(
            params, self.learning_rate, self.initial_accumulator_value, self.epsilon
        )

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adadelta(Optimizer):
    """Adadelta; ``torch.optim.Adadelta`` has Keras' formula, only its defaults differ.

    Args:
        learning_rate: Step size (Keras default 0.001; torch's is 1.0).
        rho: Decay of both running averages (Keras 0.95; torch 0.9).
        epsilon: Added inside both square roots (Keras 1e-7; torch 1e-6).
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        _check_range("Adadelta", "rho", rho, 0, 1)
        _check_range("Adadelta", "epsilon", epsilon, 0)
        self.rho, self.epsilon = rho, epsilon

    def _make_torch_optimizer(self, params):
        return torch.optim.Adadelta(params, lr=self.learning_rate, rho=self.rho, eps=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(_MomentOptimizer):
    """Adamax (Adam with the infinity norm), Keras formula (see _KerasAdamax).

    Args:
        learning_rate: Step size (default 0.001).
        beta_1: Decay of the first-moment average.
        beta_2: Decay of the infinity norm.
        epsilon: Added to the norm.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    torch_class = _KerasAdamax


class Nadam(_MomentOptimizer):
    """Nadam (Adam with Nesterov momentum and Dozat's momentum schedule); see _KerasNadam.

    Args:
        learning_rate: Step size (default 0.001).
        beta_1, beta_2, epsilon: As for ``Adam``.
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: See ``Optimizer``.
    """

    torch_class = _KerasNadam


_CLASSES = {
    cls.__name__.lower(): cls
    for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam)
}


def get(identifier):
    """Resolve an optimizer identifier to an ``Optimizer``.

    Args:
        identifier: A name, case-insensitive as in Keras ("adam", "SGD", "rmsprop",
            "adamw", "adagrad", "adadelta", "adamax", "nadam"); an ``Optimizer`` (returned
            as is); an Optimizer class; or a config dict ``{"class_name": ..., "config":
            {...}}``. None gives None.

    Example:
        >>> get("adam").learning_rate
        0.001
    """
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() not in _CLASSES:
            names = ", ".join(cls.__name__ for cls in _CLASSES.values())
            raise ValueError(f"Unknown optimizer {identifier!r}. Known names: {names}.")
        return _CLASSES[identifier.lower()]()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(str(identifier.get("class_name")).lower())
        if cls is None:
            raise ValueError(
                f"Cannot build an optimizer from {identifier!r}. Expected {{'class_name': "
                f"<one of {', '.join(c.__name__ for c in _CLASSES.values())}>, 'config': {{...}}}}."
            )
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(
        f"Expected an optimizer name, Optimizer instance or config dict, got "
        f"{type(identifier).__name__}: {identifier!r}. Use e.g. optimizer='adam'."
    )
