"""A fused SimpleRNN layer with a hand-written backward pass through time.

The reference loop (`rnnkit.layers._rnn.RNN.call`) records several autograd
nodes per time step. Here the input projection and the whole recurrence are one node:

    forward:   a_t = act(x_t W + b + h_{t-1} U)   t = 1..T; x W + b is one GEMM for all
                                                  steps, then one GEMM per step
               h_t = m_t ? a_t : h_{t-1}          m = the (batch, timesteps) mask
    backward:  g_t  = dL/dh_t  (from the output at t, plus what flows back from t+1)
               dz_t = (m_t * g_t) * act'(a_t)
               dL/dh_{t-1} = dz_t U^T + (1 - m_t) * g_t
               dU = sum_t h_{t-1}^T dz_t          one GEMM each after the loop
               dW = sum_t x_t^T dz_t,  db = sum_t dz_t,  dL/dx_t = dz_t W^T

`act'` is written in terms of the output `a` (tanh: 1 - a², sigmoid: a(1 - a),
relu: a > 0, linear: 1), so the forward pass keeps only `a` and `h`; the backward
pass applies it one step at a time with aten's fused `*_backward` ops (`SLOPES`).
On a wide CPU batch (`TANH_BY_SIGMOID_FROM`), tanh is computed as `2 sigmoid(2z) - 1`
(see `_tanh_of_twice`).

Everything is time-major inside, `(T, B, H)`, so each step reads and writes a
contiguous slab, and one buffer holds `g_t` and then, in place, `dz_t`. The last
state is a separate output: a layer that returns only it sends no gradient for
the other steps, and the backward pass then neither makes nor reads one. With no
gradient to compute, `simple_rnn_states` runs the forward loop alone, no node.

On CPU in float32/float64 both loops run compiled (`compiled.py`, `_loops.cpp`), on these
same buffers; the loops below, with the tanh trick, run where the compiled ones cannot.
With a few input features (`compiled.narrow_fits`), the compiled loops make `x W + b` and
gather `dW`, `db` themselves, instead of those GEMMs over all steps.
"""

from __future__ import annotations

import torch

from rnnkit.kernels import compiled

# activation name -> (in-place forward, derivative from the output)
ACTIVATIONS = {
    "tanh": (torch.tanh_, lambda a: 1 - a * a),
    "sigmoid": (torch.sigmoid_, lambda a: a * (1 - a)),
    "relu": (torch.relu_, lambda a: (a > 0).to(a.dtype)),
    "linear": (lambda a: a, lambda a: torch.ones_like(a)),
}

_aten = torch.ops.aten
# activation name -> in-place `g *= act'(z)` from the output `a = act(z)`: one fused op per
# step, cheaper than computing act' for every step first.
SLOPES = {
    "tanh": lambda g, a: _aten.tanh_backward.grad_input(g, a, grad_input=g),
    "sigmoid": lambda g, a: _aten.sigmoid_backward.grad_input(g, a, grad_input=g),
    "relu": lambda g, a: _aten.threshold_backward.grad_input(g, a, 0, grad_input=g),
    "linear": lambda g, a: g,
}


def _tanh_of_twice(like):
    """An in-place `a = tanh(a / 2)` for tensors like `like`, as `2 sigmoid(a) - 1`: on CPU
    torch's sigmoid is ~5x faster than its tanh (measured 0.5 against 2.6 ns an element,
    torch 2.13, AVX-512), which pays for the extra op; the two agree to float rounding
    (2e-7 in float32). The caller computes `a = 2z` with doubled weights, which is exact."""
    minus_one = like.new_tensor(-1.0)

    def act(a):
        torch.sigmoid_(a)
        return torch.add(minus_one, a, alpha=2, out=a)

    return act


# batch x units from which tanh runs as `_tanh_of_twice` on CPU: below it, the one extra op
# per step costs more than tanh's slower arithmetic (measured break-even: ~600 elements).
TANH_BY_SIGMOID_FROM = 1024


def time_major_mask(mask):
    """A `(B, T)` mask as the kernels read it: `(T, B, 1)` booleans (None stays None)."""
    if mask is None:
        return None
    return mask.transpose(0, 1).unsqueeze(-1).bool().contiguous()


def needs_graph(*tensors) -> bool:
    """Whether autograd must record the recurrence: some input wants a gradient."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def state_gradients(like, grad_states, grad_last):
    """The buffer the backward loop gathers `dL/dh_t` in, `(T + 1, B, H)` shaped like `like`
    (row 0 for `h_0`), and whether rows are added to (`True`: the output had a gradient at
    every step) or written once (only the last state had one: no zero fill)."""
    grads = torch.empty_like(like)
    accumulate = grad_states is not None
    if accumulate:
        grads[0] = 0
        grads[1:] = grad_states
        if grad_last is not None:
            grads[-1] += grad_last
    else:
        grads[-1] = grad_last
    return grads, accumulate


def _forward(x, kernel, bias, h0, recurrent_kernel, mask, activation):
    """The forward loop. Returns the time-major inputs `(T*B, D)`, the activations
    `(T + 1, B, H)` and the states `(T + 1, B, H)`, row 0 of both being `h_0` (the same
    tensor when no step is masked)."""
    act, _ = ACTIVATIONS[activation]
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    w, b, u = kernel, bias, recurrent_kernel  # the GEMMs compute z = x W + b + h U
    in_c = compiled.missing(x, recurrent_kernel) is None  # the time loop compiled
    wide = batch * units >= TANH_BY_SIGMOID_FROM
    if activation == "tanh" and x.device.type == "cpu" and wide and not in_c:
        # ... or 2z, from doubled weights, for tanh(z) = 2 sigmoid(2z) - 1
        act, w, u = _tanh_of_twice(x), kernel * 2, recurrent_kernel * 2
        b = bias * 2 if bias is not None else None
    x_tm = x.transpose(0, 1).contiguous().view(steps * batch, features)  # time-major rows
    # Row t of each buffer is step t = 1..T; row 0 of the states is h_0, so h_{t-1} for
    # every step is a view in the backward pass, not a concatenation. a_t = (x W + b)_t +
    # h_{t-1} U is accumulated in place on the projection, one GEMM for all steps (or, with
    # few features, made in the compiled loop).
    a_all = x.new_empty(steps + 1, batch, units)  # (T + 1, B, H)
    # Without a mask no step is held, so the states are the activations themselves.
    h_all = a_all if mask is None else x.new_empty(steps + 1, batch, units)
    h_all[0] = h0
    if in_c and compiled.narrow_fits(x):
        inputs = compiled.narrow(x_tm, w, b)
        compiled.simple_rnn_forward(a_all, h_all, u, mask, activation, inputs)
        return x_tm, a_all, h_all
    projection = a_all[1:].view(-1, units)
    if b is None:
        torch.mm(x_tm, w, out=projection)
    else:
        torch.addmm(b, x_tm, w, out=projection)
    if in_c:
        compiled.simple_rnn_forward(a_all, h_all, u, mask, activation)
        return x_tm, a_all, h_all
    a_steps = a_all.unbind(0)
    states = a_steps if mask is None else h_all.unbind(0)
    keep = mask.unbind(0) if mask is not None else None
    for t in range(1, steps + 1):
        a_t = a_steps[t].addmm_(states[t - 1], u)
        act(a_t)
        if keep is not None:
            torch.where(keep[t - 1], a_t, states[t - 1], out=states[t])
    return x_tm, a_all, h_all


def _backward_loop(grad, a_all, recurrent_kernel, mask, activation, accumulate):
    """The backward loop in Python (where the compiled one cannot run): `grad` as
    `state_gradients` made it; rows 1.. become `dz_t` and row 0 `dL/dh_0`."""
    slope, steps = SLOPES[activation], a_all.shape[0] - 1
    hold = keep = None
    if mask is not None:
        keep = mask.to(a_all.dtype)  # (T, B, 1): a masked step sends nothing through the cell
        hold = (1 - keep).unbind(0)  # ... its gradient goes straight to h_{t-1}
        keep = keep.unbind(0)
    grads, a_steps, u_t = grad.unbind(0), a_all.unbind(0), recurrent_kernel.t()
    for t in range(steps, 0, -1):
        g, back = grads[t], grads[t - 1]
        if hold is not None:  # a held step's gradient goes straight to h_{t-1}
            if accumulate:
                back.addcmul_(g, hold[t - 1])
            else:
                torch.mul(g, hold[t - 1], out=back)
        dz = slope(g, a_steps[t])
        if keep is not None:
            dz.mul_(keep[t - 1])
        if accumulate or hold is not None:
            back.addmm_(dz, u_t)
        else:
            torch.mm(dz, u_t, out=back)


class SimpleRNNRecurrence(torch.autograd.Function):
    """`states, last = recurrence(x, W, b, h0, U, mask, activation)`; shapes `(B, T, D)`,
    `(D, H)`, `(H,)` or None, `(B, H)`, `(H, H)`.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold the state) or None.
    Returns the state after every step, time-major `(T, B, H)`, and the last one `(B, H)`
    apart: when only the last is used, no gradient for every step is made or read.
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, h0, recurrent_kernel, mask, activation: str):
        x_tm, a_all, h_all = _forward(x, kernel, bias, h0, recurrent_kernel, mask, activation)
        ctx.save_for_backward(x_tm, kernel, recurrent_kernel, a_all, h_all, mask)
        ctx.activation = activation
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        # autograd wants the last state as an output of its own; run by hand, a view does
        return h_all[1:], h_all[-1] if getattr(ctx, "by_hand", False) else h_all[-1].clone()

    @staticmethod
    def backward(ctx, grad_states, grad_last):
        x_tm, kernel, recurrent_kernel, a_all, h_all, mask = ctx.saved_tensors
        steps, units = a_all.shape[0] - 1, a_all.shape[-1]
        if grad_states is None and grad_last is None:
            return (None,) * 7
        # grad[t] gathers dL/dh_t: the output's gradient at t, then what flows back from step
        # t + 1; once complete, it becomes dz_t in place. grad[0] is dL/dh_0.
        grad, accumulate = state_gradients(a_all, grad_states, grad_last)  # (T + 1, B, H)
        needs_x, needs_w, needs_b, needs_h0, needs_u, *_ = ctx.needs_input_grad
        features = x_tm.shape[-1]
        per_row = None  # [dW; db] per batch row, gathered in the compiled loop (few features)
        if compiled.missing(a_all, recurrent_kernel) is None:
            batch = a_all.shape[1]
            inputs, per_row = compiled.narrow_gradients(x_tm, kernel, batch, needs_w or needs_b)
            compiled.simple_rnn_backward(
                grad, a_all, recurrent_kernel, mask, ctx.activation, accumulate, inputs
            )
        else:
            _backward_loop(grad, a_all, recurrent_kernel, mask, ctx.activation, accumulate)
        grad_z = grad[1:].view(-1, units)  # dz_t for every step, (T*B, H)
        grad_x = grad_w = grad_b = grad_u = None
        if needs_x:
            grad_x = (grad_z @ kernel.t()).view(steps, -1, features).transpose(0, 1)
        if per_row is not None:
            grad_w, grad_b = compiled.narrow_sums(per_row, needs_w, needs_b)
        else:
            if needs_w:
                grad_w = x_tm.t() @ grad_z
            if needs_b:
                grad_b = grad_z.sum(0)
        if needs_u:
            grad_u = h_all[:-1].reshape(-1, units).t() @ grad_z  # h_{t-1} for every step
        grad_h0 = grad[0].clone() if needs_h0 else None  # not a view of the whole buffer
        return grad_x, grad_w, grad_b, grad_h0, grad_u, None, None


def simple_rnn_states(x, h0, kernel, recurrent_kernel, bias=None, mask=None, activation="tanh"):
    """Every state `h_t` of a SimpleRNN, `(B, T, H)`, and the last one, `(B, H)`.

    Use the last state from here rather than slicing the sequence: when nothing else reads
    the sequence, the backward pass then has no all-steps gradient to make and read.

    Args:
        x: `(B, T, D)` inputs.
        h0: `(B, H)` initial state.
        kernel: `W`, `(D, H)`.
        recurrent_kernel: `U`, `(H, H)`.
        bias: `b`, `(H,)`, or None.
        mask: `(B, T)` booleans or None; `False` steps keep the previous state.
        activation: one of `ACTIVATIONS`.
    """
    mask_t = time_major_mask(mask)
    tensors = (x, kernel, bias, h0, recurrent_kernel)
    if needs_graph(*tensors):
        states, last = SimpleRNNRecurrence.apply(*tensors, mask_t, activation)
    else:  # inference: the forward loop alone, no autograd node (faster than torch.rnn_tanh)
        _, _, h_all = _forward(*tensors, mask_t, activation)
        states, last = h_all[1:], h_all[-1]
    return states.transpose(0, 1), last  # (B, T, H), (B, H)
