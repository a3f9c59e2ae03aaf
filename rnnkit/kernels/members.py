"""Fused recurrences for an ensemble: M models of one architecture, one loop over all rows.

The members differ only in their weights, stacked along a leading axis: `W` `(M, D, width)`,
`U` `(M, H, width)`, `b` `(M, width)`. The batch rows are grouped member-major: rows
`[m B_m, (m + 1) B_m)` belong to member m, `B = M B_m`. Each Function takes the arguments of
its single-member one (`SimpleRNNRecurrence`, `GRURecurrence`, `LSTMRecurrence`) with the
weights stacked, returns the same outputs, and computes, for member m's rows,

    h_t = cell(x_t W_m + b_m, h_{t-1} U_m)            the single-member equations

so the oracle is each member's rows through the single-member Function with its weights.
The time loops run compiled (`compiled.py`, `_loops.cpp`) for all members in one call per
direction: every row reads its own member's packed `U`. Outside the loops the products over
all steps are batched per member, `torch.bmm` on `(M, T*B_m, ·)` copies of the time-major
buffers (`by_member`). Where the compiled loops cannot run (`compiled.missing`), or for a GRU
with `reset_after=False`, each member's rows run through the single-member Function's own
forward and backward (`_PerMember`): the same numbers, M loops instead of one.

    >>> import torch
    >>> M, B_m, T, D, H = 2, 3, 4, 5, 6
    >>> x, h0 = torch.randn(M * B_m, T, D), torch.zeros(M * B_m, H)
    >>> w, u, b = torch.randn(M, D, H), torch.randn(M, H, H) * 0.3, torch.zeros(M, H)
    >>> states, last = MembersSimpleRNN.apply(x, w, b, h0, u, None, "tanh")
    >>> states.shape, last.shape  # time-major, as SimpleRNNRecurrence's
    (torch.Size([4, 6, 6]), torch.Size([6, 6]))
"""

from __future__ import annotations

import torch

from rnnkit.kernels import by_hand, compiled
from rnnkit.kernels.gru import GRURecurrence
from rnnkit.kernels.lstm import LSTMRecurrence
from rnnkit.kernels.simple_rnn import SimpleRNNRecurrence, state_gradients


def by_member(t: torch.Tensor, members: int) -> torch.Tensor:
    """A time-major `(T, B, K)` buffer as `(M, T*B_m, K)`, each member's rows together."""
    steps, batch, width = t.shape
    # (T, M, B_m, K) -> (M, T, B_m, K) -> (M, T*B_m, K)
    return (
        t.view(steps, members, batch // members, width).transpose(0, 1).reshape(members, -1, width)
    )


def time_major(t: torch.Tensor, steps: int) -> torch.Tensor:
    """`by_member`'s inverse as a view: `(M, T*B_m, K)` -> `(T, B, K)` (not contiguous)."""
    members, rows, width = t.shape
    # (M, T, B_m, K) -> (T, M, B_m, K) -> (T, B, K)
    return t.view(members, steps, rows // steps, width).transpose(0, 1).flatten(1, 2)


def project_into(out, x_members, kernel, bias) -> None:
    """`out` `(T, B, width)` = `x W_m + b_m` per member; `x_members` `(M, T*B_m, D)`."""
    if bias is None:
        xw = torch.bmm(x_members, kernel)
    else:
        xw = torch.baddbmm(bias.unsqueeze(1), x_members, kernel)  # (M, T*B_m, width)
    out.copy_(time_major(xw, out.shape[0]))


def member_sums(per_row, members: int) -> tuple:
    """`dW` `(M, D, width)` and `db` `(M, width)` from the loops' per-row `[dW; db]`
    `(B, D + 1, width)`."""
    batch, rows, width = per_row.shape
    sums = per_row.view(members, batch // members, rows, width).sum(1)  # (M, D + 1, width)
    return sums[:, :-1], sums[:, -1]


def inputs_of(x_tm, steps, members, kernel, bias, out) -> tuple:
    """`(inputs, x_members)` for a forward loop: with few features the loop makes
    `x W_m + b_m` itself (`compiled.narrow`, no copy per member); otherwise `out`
    `(T, B, width)` gets it from one batched product over `x_members` `(M, T*B_m, D)`."""
    if compiled.narrow_fits(x_tm):
        return compiled.narrow(x_tm, kernel, bias), None
    x_members = by_member(x_tm.view(steps, -1, x_tm.shape[-1]), members)
    project_into(out, x_members, kernel, bias)
    return compiled.NO_INPUTS, x_members


def input_weight_gradients(per_row, x_members, d_members, members, needs_w, needs_b):
    """`dW` `(M, D, width)` and `db` `(M, width)` (None where not needed): from the loops'
    per-row sums (narrow inputs) or batched products over `d_members` `(M, T*B_m, width)`."""
    grad_w = grad_b = None
    if per_row is not None:
        grad_w, grad_b = member_sums(per_row, members)
    else:
        if needs_w:
            grad_w = bmm_t(x_members, d_members)
        if needs_b:
            grad_b = d_members.sum(1)  # (a sum over the copy's rows is ~10x faster)
    return (grad_w if needs_w else None), (grad_b if needs_b else None)


def bmm_t(a, b) -> torch.Tensor:
    """`a_m^T b_m` for every member: `(M, N, K)`, `(M, N, L)` -> `(M, K, L)`."""
    return torch.bmm(a.transpose(1, 2), b)


def check(name, x, batch_axis, h_states, kernel, recurrent_kernel, biases, mask, gates):
    """ValueError unless the arguments stack `M` members of `gates` blocks of `units`
    consistently. Returns M."""
    if mask is not None:
        raise ValueError(
            f"{name}: mask must be None (the members' loops run whole sequences); got a mask "
            f"of shape {tuple(mask.shape)}. Pad nothing, or run each member's masked rows "
            "through the single-member recurrence."
        )
    if kernel.dim() != 3:
        raise ValueError(
            f"{name}: kernel must be stacked by member, (members, features, {gates}*units); "
            f"got shape {tuple(kernel.shape)}. One member? Try kernel.unsqueeze(0)"
        )
    members, features, width = kernel.shape
    units = width // gates
    expected = (members, units, width)
    if tuple(recurrent_kernel.shape) != expected or width != gates * units:
        raise ValueError(
            f"{name}: recurrent_kernel must be (members, units, {gates}*units) = {expected} "
            f"for a kernel of shape {tuple(kernel.shape)}; got {tuple(recurrent_kernel.shape)}"
        )
    for bias_name, bias in biases.items():
        if bias is not None and tuple(bias.shape) != (members, width):
            raise ValueError(
                f"{name}: {bias_name} must be (members, {gates}*units) = {(members, width)}; "
                f"got {tuple(bias.shape)}"
            )
    batch = x.shape[batch_axis]
    if batch % members:
        raise ValueError(
            f"{name}: x has {batch} rows, not a multiple of the {members} members; rows must be "
            f"member-major, members * rows_per_member (e.g. {members} * {max(1, batch // members)})"
        )
    if x.shape[-1] != features:
        raise ValueError(
            f"{name}: x must have {features} features (the kernel's); got {x.shape[-1]}"
        )
    for state_name, h in h_states.items():
        if tuple(h.shape) != (batch, units):
            raise ValueError(
                f"{name}: {state_name} must be (rows, units) = {(batch, units)}; "
                f"got {tuple(h.shape)}"
            )
    return members


class _PerMember:
    """The fallback: each member's rows through the single-member Function's own forward and
    backward (run by hand, `by_hand.Context`), the outputs and gradients joined again.

    `rows[i]`: the batch axis of argument i (None: not per row), `stacked[i]`: whether argument
    i is stacked by member; `out_rows`: the batch axis of each output. `zeros_for_none`: the
    Function's backward takes zeros, not None, for an unused output (LSTMRecurrence)."""

    def __init__(self, function, rows, stacked, out_rows, zeros_for_none=False):
        self.function, self.rows, self.stacked, self.out_rows = function, rows, stacked, out_rows
        self.zeros_for_none = zeros_for_none

    def forward(self, ctx, members, args):
        contexts, outputs = [], []
        for m in range(members):
            part = []
            for arg, axis, stacked in zip(args, self.rows, self.stacked, strict=True):
                if isinstance(arg, torch.Tensor) and axis is not None:
                    share = arg.shape[axis] // members  # the loops read contiguous rows
                    arg = arg.narrow(axis, m * share, share).contiguous()
                elif isinstance(arg, torch.Tensor) and stacked:
                    arg = arg[m]
                part.append(arg)
            sub = by_hand.Context((True,) * len(args))
            outputs.append(self.function.forward(sub, *part))
            contexts.append(sub)
        ctx.member_contexts = contexts
        ctx.member_outputs = [[(o.shape, o.dtype, o.device) for o in out] for out in outputs]
        return tuple(
            torch.cat(parts, axis) for parts, axis in zip(zip(*outputs), self.out_rows, strict=True)
        )

    def backward(self, ctx, grads):
        contexts = ctx.member_contexts
        members = len(contexts)
        if all(g is None for g in grads):
            return (None,) * len(self.rows)
        results = []
        for m, sub in enumerate(contexts):
            sub.needs_input_grad = ctx.needs_input_grad
            part = [
                None if g is None else g.chunk(members, axis)[m]
                for g, axis in zip(grads, self.out_rows, strict=True)
            ]
            if self.zeros_for_none:
                part = [
                    torch.zeros(shape, dtype=dtype, device=device) if g is None else g
                    for g, (shape, dtype, device) in zip(part, ctx.member_outputs[m], strict=True)
                ]
            results.append(self.function.backward(sub, *part))
        joined = []
        for i, (needed, axis, stacked) in enumerate(
            zip(ctx.needs_input_grad, self.rows, self.stacked, strict=True)
        ):
            parts = [r[i] for r in results]
            if not needed or any(p is None for p in parts):
                joined.append(None)
            elif axis is not None:
                joined.append(torch.cat(parts, axis))
            else:
                joined.append(torch.stack(parts) if stacked else None)
        return tuple(joined)


_SIMPLE_FALLBACK = _PerMember(
    SimpleRNNRecurrence,
    rows=(0, None, None, 0, None, None, None),
    stacked=(False, True, True, False, True, False, False),
    out_rows=(1, 0),
)


class MembersSimpleRNN(torch.autograd.Function):
    """`states, last = recurrence(x, W, b, h0, U, mask, activation)` for M members; shapes
    `(B, T, D)`, `(M, D, H)`, `(M, H)` or None, `(B, H)`, `(M, H, H)`, rows member-major.

    `mask` must be None. Returns the states time-major `(T, B, H)` and the last `(B, H)`, as
    `SimpleRNNRecurrence`: `h_t = act(x_t W_m + b_m + h_{t-1} U_m)` on member m's rows.
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, h0, recurrent_kernel, mask, activation: str):
        members = check(
            "MembersSimpleRNN", x, 0, {"h0": h0}, kernel, recurrent_kernel, {"bias": bias}, mask, 1
        )
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        ctx.in_c = compiled.missing(x, recurrent_kernel) is None
        if not ctx.in_c:
            args = (x, kernel, bias, h0, recurrent_kernel, mask, activation)
            return _SIMPLE_FALLBACK.forward(ctx, members, args)
        batch, steps, features = x.shape
        units = recurrent_kernel.shape[-1]
        x_tm = x.transpose(0, 1).contiguous().view(steps * batch, features)  # time-major rows
        a_all = x.new_empty(steps + 1, batch, units)  # row 0 h_0, then a_t = h_t (no mask)
        a_all[0] = h0
        inputs, x_members = inputs_of(x_tm, steps, members, kernel, bias, a_all[1:])
        compiled.simple_rnn_forward(a_all, a_all, recurrent_kernel, None, activation, inputs)
        ctx.save_for_backward(x_tm, x_members, kernel, recurrent_kernel, a_all)
        ctx.activation, ctx.members = activation, members
        return a_all[1:], a_all[-1].clone()

    @staticmethod
    def backward(ctx, grad_states, grad_last):
        if not ctx.in_c:
            return _SIMPLE_FALLBACK.backward(ctx, (grad_states, grad_last))
        if grad_states is None and grad_last is None:
            return (None,) * 7
        x_tm, x_members, kernel, recurrent_kernel, a_all = ctx.saved_tensors
        needs_x, needs_w, needs_b, needs_h0, needs_u, *_ = ctx.needs_input_grad
        members, steps, batch = ctx.members, a_all.shape[0] - 1, a_all.shape[1]
        grad, accumulate = state_gradients(a_all, grad_states, grad_last)  # (T + 1, B, H)
        inputs, per_row = compiled.narrow_gradients(x_tm, kernel, batch, needs_w or needs_b)
        compiled.simple_rnn_backward(
            grad, a_all, recurrent_kernel, None, ctx.activation, accumulate, inputs
        )
        dz = grad[1:]  # dz_t, (T, B, H)
        dz_members = by_member(dz, members)  # (M, T*B_m, H)
        grad_x = grad_w = grad_b = grad_u = None
        if needs_x:  # (M, T*B_m, D) -> (T, B, D) -> (B, T, D)
            grad_x = time_major(torch.bmm(dz_members, kernel.transpose(1, 2)), steps)
            grad_x = grad_x.transpose(0, 1)
        grad_w, grad_b = input_weight_gradients(
            per_row, x_members, dz_members, members, needs_w, needs_b
        )
        if needs_u:
            grad_u = bmm_t(by_member(a_all[:-1], members), dz_members)  # h_{t-1} per member
        grad_h0 = grad[0].clone() if needs_h0 else None
        return grad_x, grad_w, grad_b, grad_h0, grad_u, None, None


_GRU_FALLBACK = _PerMember(
    GRURecurrence,
    rows=(0, None, None, None, 0, None, None, None, None, None),
    stacked=(False, True, True, True, False, True, False, False, False, False),
    out_rows=(1, 0),
)


class MembersGRU(torch.autograd.Function):
    """`states, last = recurrence(x, W, b, b', h0, U, mask, activation, recurrent_activation,
    reset_after)` for M members; shapes `(B, T, D)`, `(M, D, 3H)`, `(M, 3H)` or None,
    `(M, 3H)` or None (reset_after only), `(B, H)`, `(M, H, 3H)`, rows member-major.

    `mask` must be None. Returns as `GRURecurrence`: the states time-major `(T, B, H)` and the
    last `(B, H)`. `reset_after=False` runs each member apart (`_PerMember`).
    """

    @staticmethod
    def forward(ctx, x, kernel, b_in, b_rec, h0, recurrent_kernel, mask, act, sigma, after):
        biases = {"b_in": b_in, "b_rec": b_rec}
        members = check("MembersGRU", x, 0, {"h0": h0}, kernel, recurrent_kernel, biases, mask, 3)
        if b_rec is not None and not after:
            raise ValueError("MembersGRU: b_rec must be None with reset_after=False")
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        ctx.in_c = after and compiled.missing(x, recurrent_kernel) is None
        if not ctx.in_c:
            args = (x, kernel, b_in, b_rec, h0, recurrent_kernel, mask, act, sigma, after)
            return _GRU_FALLBACK.forward(ctx, members, args)
        batch, steps, features = x.shape
        units = recurrent_kernel.shape[1]
        zr, hh = slice(0, 2 * units), slice(2 * units, 3 * units)
        # [b_zr + b'_zr, b_h]: b'_z, b'_r are added before σ like b_z, b_r (as gru.py folds them)
        bias = b_in
        if b_rec is not None:
            bias = b_rec.new_zeros(members, 3 * units) if b_in is None else b_in.clone()
            bias[:, zr] = bias[:, zr] + b_rec[:, zr]
        x_tm = x.transpose(0, 1).contiguous().view(steps * batch, features)  # time-major rows
        zrh = x.new_empty(steps, batch, 3 * units)  # x W + bias, then [z, r, hu_h]
        xh = x.new_empty(steps, batch, units)  # the candidates n
        states = x.new_empty(steps + 1, batch, units)  # h_0 .. h_T
        states[0] = h0
        diff = x.new_empty(steps, batch, units)  # h_{t-1} - n_t
        inputs, x_members = inputs_of(x_tm, steps, members, kernel, bias, zrh)
        b_rec_h = b_rec[:, hh].contiguous() if b_rec is not None else None  # (M, H)
        buffers = (zrh, xh, states, diff, recurrent_kernel, b_rec_h, None)
        compiled.gru_forward(*buffers, act, sigma, inputs)
        ctx.save_for_backward(x_tm, x_members, kernel, recurrent_kernel, zrh, xh, states, diff)
        ctx.names, ctx.members = (act, sigma), members
        return states[1:], states[-1].clone()

    @staticmethod
    def backward(ctx, grad_states, grad_last):
        if not ctx.in_c:
            return _GRU_FALLBACK.backward(ctx, (grad_states, grad_last))
        if grad_states is None and grad_last is None:
            return (None,) * 10
        x_tm, x_members, kernel, recurrent_kernel, zrh, n, states, diff = ctx.saved_tensors
        needs_x, needs_w, needs_b, needs_b_rec, needs_h0, needs_u, *_ = ctx.needs_input_grad
        members = ctx.members
        steps, batch, units = diff.shape
        hh = slice(2 * units, 3 * units)
        grads, accumulate = state_gradients(states, grad_states, grad_last)  # (T + 1, B, H)
        d = n.new_empty(steps, batch, 3 * units)  # [dz', dr', dn' r]: the gradient of h U + b'
        dn = n.new_empty(steps, batch, units)  # dn'
        inputs, per_row = compiled.narrow_gradients(x_tm, kernel, batch, needs_w or needs_b)
        buffers = (grads, d, dn, zrh, n, diff, recurrent_kernel, None)
        compiled.gru_backward(*buffers, *ctx.names, accumulate, inputs)
        grad_x = grad_w = grad_b = grad_b_rec = grad_u = None
        d_members = None
        if needs_u or needs_b_rec:
            d_members = by_member(d, members)  # (M, T*B_m, 3H)
            if needs_u:
                grad_u = bmm_t(by_member(states[:-1], members), d_members)
            if needs_b_rec:
                grad_b_rec = d_members.sum(1)
        dxw = None  # [dz', dr', dn']: the gradient of x W + b, (M, T*B_m, 3H)
        if needs_x or per_row is None and (needs_w or needs_b):
            # d_members' last use was above (and by_member may give a view of d, M = 1)
            dxw = by_member(d, members) if d_members is None else d_members
            dxw[..., hh] = by_member(dn, members)
        if needs_x:  # (M, T*B_m, D) -> (T, B, D) -> (B, T, D)
            grad_x = time_major(torch.bmm(dxw, kernel.transpose(1, 2)), steps).transpose(0, 1)
        grad_w, grad_b = input_weight_gradients(per_row, x_members, dxw, members, needs_w, needs_b)
        grad_h0 = grads[0].clone() if needs_h0 else None
        return grad_x, grad_w, grad_b, grad_b_rec, grad_h0, grad_u, None, None, None, None


_LSTM_FALLBACK = _PerMember(
    LSTMRecurrence,
    rows=(1, None, None, 0, 0, None, None, None, None),
    stacked=(False, True, True, False, False, True, False, False, False),
    out_rows=(1, 0),
    zeros_for_none=True,
)


class MembersLSTM(torch.autograd.Function):
    """`states, c_T = recurrence(x, W, b, h0, c0, U, mask, activation, recurrent_activation)`
    for M members; shapes `(T, B, D)` (time-major, as `LSTMRecurrence`), `(M, D, 4H)`,
    `(M, 4H)` or None, `(B, H)`, `(B, H)`, `(M, H, 4H)`, rows member-major.

    `mask` must be None. Returns every `h_t`, `(T, B, H)`, and the last cell state, `(B, H)`.
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, h0, c0, recurrent_kernel, mask, act, sigma):
        h_states = {"h0": h0, "c0": c0}
        members = check(
            "MembersLSTM", x, 1, h_states, kernel, recurrent_kernel, {"bias": bias}, mask, 4
        )
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        ctx.in_c = compiled.missing(x, recurrent_kernel) is None
        if not ctx.in_c:
            args = (x, kernel, bias, h0, c0, recurrent_kernel, mask, act, sigma)
            return _LSTM_FALLBACK.forward(ctx, members, args)
        steps, batch, features = x.shape
        units = recurrent_kernel.shape[1]
        flat_x = x.reshape(steps * batch, features).contiguous()  # (T*B, D)
        gates = x.new_empty(steps, batch, 4 * units)  # x W + b, then [i, f, g, o]
        inputs, x_members = inputs_of(flat_x, steps, members, kernel, bias, gates)
        squashed = x.new_empty(steps, batch, units)  # act(c')
        h = x.new_empty(steps + 1, batch, units)  # h_0 .. h_T
        c = x.new_empty(steps + 1, batch, units)  # c_0 .. c_T
        h[0], c[0] = h0, c0
        buffers = (gates, h, c, c, squashed, recurrent_kernel, None)
        compiled.lstm_forward(*buffers, act, sigma, inputs)
        ctx.save_for_backward(flat_x, x_members, kernel, recurrent_kernel, gates, squashed, h, c)
        ctx.names, ctx.members = (act, sigma), members
        return h[1:], c[steps]

    @staticmethod
    def backward(ctx, grad_h, grad_c_last):
        if not ctx.in_c:
            return _LSTM_FALLBACK.backward(ctx, (grad_h, grad_c_last))
        if grad_h is None and grad_c_last is None:
            return (None,) * 9
        flat_x, x_members, kernel, recurrent_kernel, gates, squashed, h, c = ctx.saved_tensors
        needs_x, needs_w, needs_b, needs_h0, needs_c0, needs_u, *_ = ctx.needs_input_grad
        members = ctx.members
        steps, batch, units = squashed.shape
        gh = squashed.new_empty(steps + 1, batch, units)  # dL/dh_0 .. dL/dh_T
        gh[0] = 0
        gh[1:] = 0 if grad_h is None else grad_h
        if grad_c_last is None:  # dL/dc_T, then dL/dc_0
            gc = squashed.new_zeros(batch, units)
        else:
            gc = grad_c_last.clone(memory_format=torch.contiguous_format)
        dz = torch.empty_like(gates)  # the gates' pre-activation gradients, (T, B, 4H)
        inputs, per_row = compiled.narrow_gradients(flat_x, kernel, batch, needs_w or needs_b)
        buffers = (gh, gc, dz, gates, c, squashed, recurrent_kernel, None)
        compiled.lstm_backward(*buffers, *ctx.names, True, inputs)
        dz_members = by_member(dz, members)  # (M, T*B_m, 4H)
        grad_x = grad_w = grad_b = grad_u = None
        if needs_x:  # (M, T*B_m, D) -> (T, B, D)
            grad_x = time_major(torch.bmm(dz_members, kernel.transpose(1, 2)), steps)
        grad_w, grad_b = input_weight_gradients(
            per_row, x_members, dz_members, members, needs_w, needs_b
        )
        if needs_u:
            grad_u = bmm_t(by_member(h[:-1], members), dz_members)  # h_{t-1} per member
        grad_h0 = gh[0].clone() if needs_h0 else None
        grad_c0 = gc if needs_c0 else None
        return grad_x, grad_w, grad_b, grad_h0, grad_c0, grad_u, None, None, None
