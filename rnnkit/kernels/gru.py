"""A fused GRU layer with a hand-written backward pass through time.

The cell is Keras' (`rnnkit.layers._gru.GRUCell`, blocks z, r, h); with `reset_after=True`:

    forward:   xw = x W + b                             one GEMM for all steps
               hu_t = h_{t-1} U + b'                    one (B, 3H) GEMM per step
               z, r = σ(xw_z + hu_z), σ(xw_r + hu_r)
               n_t  = act(xw_h + r * hu_h)
               a_t  = n_t + z * (h_{t-1} - n_t)         = z h_{t-1} + (1 - z) n_t
               h_t  = m_t ? a_t : h_{t-1}               m = the (batch, timesteps) mask
    backward:  g = dL/dh_t (from the output at t, plus what flows back from t+1)
               dn' = m g (1 - z) act'(n)                  (the pre-activation of n)
               dz' = m g (h_{t-1} - n) σ'(z)
               dr' = dn' hu_h σ'(r)
               dL/dh_{t-1} = [dz', dr', dn' r] U^T + g (m z + 1 - m)
               dU = sum_t h_{t-1}^T [dz', dr', dn' r]    one GEMM each after the loop
               dW = x^T [dz', dr', dn'],  db = sum [dz', dr', dn'],  dL/dx = [dz', dr', dn'] W^T

With `reset_after=False` the reset gate acts before the product: `n = act(xw_h + (r h) U_h)`,
so `dL/d(r h) = dn' U_h^T` takes one more GEMM a step, and there is no recurrent bias.

The input projection and the whole recurrence are one autograd node. `act'` and `σ'` are
applied one step at a time from the outputs with aten's fused `*_backward` ops (`SLOPES`).
Everything is time-major inside, `(T, B, ...)`: a `(T, B, 3H)` buffer holds `x W_zr + b_zr`
and `b'_h`, then in place, after each step's GEMM, z, r and `hu_h`; another `x W_h + b_h`,
then n. The last state is a separate output, so a layer that returns only it sends no
gradient for the other steps. On a wide CPU batch a tanh candidate runs as
`2 sigmoid(2p) - 1` (see `simple_rnn._tanh_of_twice`), with `2p` from doubled weights.
With no gradient to compute, `gru_states` runs the forward loop alone, with no autograd node.

On CPU in float32/float64 with `reset_after`, both loops run compiled (`compiled.py`,
`_loops.cpp`), on these same buffers; the loops below, with the tanh trick, run where the
compiled ones cannot. With a few input features (`compiled.narrow_fits`), the compiled loops
make `xw` and gather `dW`, `db` themselves.
"""

from __future__ import annotations

import torch

from rnnkit.kernels import compiled
from rnnkit.kernels.simple_rnn import (
    ACTIVATIONS,
    SLOPES,
    TANH_BY_SIGMOID_FROM,
    _tanh_of_twice,
    needs_graph,
    state_gradients,
    time_major_mask,
)


def _forward(x, kernel, b_in, b_rec, h0, recurrent_kernel, mask, act_name, sigma_name, after):
    """The forward loop. Returns the time-major inputs `(T*B, D)`, `zrh` `(T, B, 3H)`: the
    gates z, r and `hu_h = h_{t-1} U_h + b'_h` (reset_after) or `r * h_{t-1}` (not) of every
    step, the candidates `n` `(T, B, H)`, the states `(T + 1, B, H)` with row 0 `h_0`, and
    `diff = h_{t-1} - n_t` `(T, B, H)`."""
    act, _ = ACTIVATIONS[act_name]
    sigma, _ = ACTIVATIONS[sigma_name]
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    zr, hh = slice(0, 2 * units), slice(2 * units, 3 * units)
    w_zr, w_h = kernel[:, zr], kernel[:, hh]
    u_zr, u_h = recurrent_kernel[:, zr], recurrent_kernel[:, hh]
    b_zr = b_h = None
    if b_in is not None:
        b_zr, b_h = b_in[zr], b_in[hh]
    if after and b_rec is not None:  # b'_z, b'_r are added before σ like b_z, b_r: fold them
        b_zr = b_rec[zr] if b_zr is None else b_zr + b_rec[zr]
    scale = 1
    in_c = after and compiled.missing(x, recurrent_kernel) is None  # the time loop compiled
    wide = batch * units >= TANH_BY_SIGMOID_FROM
    if act_name == "tanh" and x.device.type == "cpu" and wide and not in_c:
        # the candidate's pre-activation doubled, exactly: tanh(p) = 2 sigmoid(2p) - 1
        act, scale, w_h = _tanh_of_twice(x), 2, w_h * 2
        b_h = b_h * 2 if b_h is not None else None
    x_tm = x.transpose(0, 1).contiguous().view(steps * batch, features)  # time-major rows
    # zrh[t] = [x W_zr + b_zr + b'_zr, b'_h]: each step's one GEMM h U accumulates in place,
    # then σ turns the first two blocks into z and r. xh = x W_h + b_h becomes n in place.
    zrh = x.new_empty(steps, batch, 3 * units)
    xh = x.new_empty(steps, batch, units)
    flat = zrh.view(-1, 3 * units)
    states = x.new_empty(steps + 1, batch, units)  # h_0 .. h_T: h_{t-1} needs no copy
    states[0] = h0
    diff = x.new_empty(steps, batch, units)
    if in_c:  # one GEMM, x W + [b_zr + b'_zr, b_h] (or, with few features, made in the
        # loop); each step the loop moves block h (x W_h + b_h) to the candidates' buffer and
        # restarts it from b'_h
        bias = None
        if b_zr is not None or b_h is not None:
            parts = ((b_zr, 2 * units), (b_h, units))
            bias = torch.cat([b if b is not None else x.new_zeros(k) for b, k in parts])
        inputs = compiled.NO_INPUTS
        if compiled.narrow_fits(x):
            inputs = compiled.narrow(x_tm, kernel, bias)
        elif bias is None:
            torch.mm(x_tm, kernel, out=flat)
        else:
            torch.addmm(bias, x_tm, kernel, out=flat)
        b_rec_h = b_rec[hh] if b_rec is not None else None
        buffers = (zrh, xh, states, diff, recurrent_kernel, b_rec_h, mask)
        compiled.gru_forward(*buffers, act_name, sigma_name, inputs)
        return x_tm, zrh, xh, states, diff
    for out, w, b in ((flat[:, zr], w_zr, b_zr), (xh.view(-1, units), w_h, b_h)):
        if b is None:
            torch.mm(x_tm, w, out=out)
        else:
            torch.addmm(b, x_tm, w, out=out)
    if after:
        zrh[..., hh] = b_rec[hh] if b_rec is not None else 0
    new = x.new_empty(batch, units) if mask is not None else None
    h = states.unbind(0)
    keep = mask.unbind(0) if mask is not None else (None,) * steps
    views = (
        zrh.unbind(0),
        zrh[..., zr].unbind(0),
        zrh[..., :units].unbind(0),
        zrh[..., units : zr.stop].unbind(0),
        zrh[..., hh].unbind(0),
        xh.unbind(0),
        diff.unbind(0),
        h[1:],
        keep,
    )
    prev = h[0]
    for step, gates, z, r, hu, n, dif, nxt, m in zip(*views):
        if after:
            step.addmm_(prev, recurrent_kernel)
            sigma(gates)
            n.addcmul_(r, hu, value=scale)
        else:
            gates.addmm_(prev, u_zr)
            sigma(gates)
            torch.mul(r, prev, out=hu)
            n.addmm_(hu, u_h, alpha=scale)
        act(n)
        torch.sub(prev, n, out=dif)
        if m is None:
            torch.addcmul(n, z, dif, out=nxt)  # n + z (h_{t-1} - n)
        else:
            torch.addcmul(n, z, dif, out=new)
            torch.where(m, new, prev, out=nxt)
        prev = nxt
    return x_tm, zrh, xh, states, diff


def _backward_loop(grads, d, dn, zrh, n, states, diff, recurrent_kernel, mask, names, accumulate):
    """The backward loop in Python (where the compiled one cannot run): fills `d`, `dn` and
    `grads` as `GRURecurrence.backward` describes them."""
    act_name, sigma_name, after = names
    act_slope, sigma_slope = SLOPES[act_name], SLOPES[sigma_name]
    steps, batch, units = diff.shape
    zr, hh = slice(0, 2 * units), slice(2 * units, 3 * units)
    u_t = recurrent_kernel.t()
    u_zr_t, u_h_t = u_t[zr], u_t[hh]
    masked = n.new_empty(batch, units) if mask is not None else None
    d_rh = n.new_empty(batch, units) if not after else None
    g_all = grads.unbind(0)

    def rev(t):  # the steps of a (T, ...) tensor, last first
        return t.unbind(0)[::-1]

    views = (
        g_all[:0:-1],  # dL/dh_t, t = T .. 1
        g_all[-2::-1],  # dL/dh_{t-1}
        states.unbind(0)[-2::-1],  # h_{t-1}
        rev(zrh[..., :units]),  # z
        rev(zrh[..., units : zr.stop]),  # r
        rev(zrh[..., zr]),  # z, r
        rev(zrh[..., hh]),  # hu_h or r h_{t-1}
        rev(n),
        rev(diff),
        rev(d),
        rev(d[..., :units]),  # dz'
        rev(d[..., units : zr.stop]),  # dr'
        rev(d[..., zr]),  # dz', dr'
        rev(d[..., hh]),  # dn' r (reset_after) or dn'
        rev(dn),
        rev(mask.to(n.dtype)) if mask is not None else (None,) * steps,
    )
    for g, back, prev, z, r, gates, hu, n_t, dif, dt, dz, dr, dzr, dnr, dn_t, m in zip(*views):
        gm = g if m is None else torch.mul(g, m, out=masked)
        a = torch.addcmul(gm, gm, z, value=-1, out=dn_t)  # m g (1 - z)
        # dL/dh_{t-1} directly: g (m z + 1 - m) = g - m g (1 - z)
        if m is not None:
            if accumulate:
                back.add_(g).sub_(a)
            else:
                torch.sub(g, a, out=back)
        elif accumulate:
            back.addcmul_(g, z)
        else:
            torch.mul(g, z, out=back)
        act_slope(a, n_t)  # dn'
        torch.mul(gm, dif, out=dz)
        if after:
            torch.mul(a, hu, out=dr)
            sigma_slope(dzr, gates)
            torch.mul(a, r, out=dnr)
            back.addmm_(dt, u_t)
        else:
            torch.mm(a, u_h_t, out=d_rh)  # dL/d(r h_{t-1})
            torch.mul(d_rh, prev, out=dr)
            sigma_slope(dzr, gates)
            back.addcmul_(d_rh, r)
            back.addmm_(dzr, u_zr_t)


class GRURecurrence(torch.autograd.Function):
    """`states, last = recurrence(x, W, b, b', h0, U, mask, activation, recurrent_activation,
    reset_after)`; shapes `(B, T, D)`, `(D, 3H)`, `(3H,)` or None, `(3H,)` or None (only with
    reset_after), `(B, H)`, `(H, 3H)`.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold the state) or None.
    Returns the state after every step, time-major `(T, B, H)`, and the last one `(B, H)`
    apart: when only the last is used, no gradient for every step is made or read.
    """

    @staticmethod
    def forward(ctx, x, kernel, b_in, b_rec, h0, recurrent_kernel, mask, act, sigma, after):
        x_tm, zrh, n, states, diff = _forward(
            x, kernel, b_in, b_rec, h0, recurrent_kernel, mask, act, sigma, after
        )
        ctx.save_for_backward(x_tm, kernel, recurrent_kernel, zrh, n, states, diff, mask)
        ctx.names = (act, sigma, after)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        # autograd wants the last state as an output of its own; run by hand, a view does
        return states[1:], states[-1] if getattr(ctx, "by_hand", False) else states[-1].clone()

    @staticmethod
    def backward(ctx, grad_states, grad_last):
        x_tm, kernel, recurrent_kernel, zrh, n, states, diff, mask = ctx.saved_tensors
        act_name, sigma_name, after = ctx.names
        needs_x, needs_w, needs_b, needs_b_rec, needs_h0, needs_u, *_ = ctx.needs_input_grad
        if grad_states is None and grad_last is None:
            return (None,) * 10
        steps, batch, units = diff.shape
        zr, hh = slice(0, 2 * units), slice(2 * units, 3 * units)
        # grads[t] gathers dL/dh_t: the output's gradient at t, then what flows back from
        # step t + 1.
        grads, accumulate = state_gradients(states, grad_states, grad_last)
        # d[t]: [dz', dr', dn' r] with reset_after (the gradient of h U + b', the per-step
        # GEMM's operand), dn' apart in dn; without, [dz', dr', dn'] (the gradient of x W + b).
        d = n.new_empty(steps, batch, 3 * units)
        dn = n.new_empty(steps, batch, units) if after else d[..., hh]
        per_row = None  # [dW; db] per batch row, gathered in the compiled loop (few features)
        if after and compiled.missing(n, recurrent_kernel) is None:
            codes = (act_name, sigma_name, accumulate)
            inputs, per_row = compiled.narrow_gradients(x_tm, kernel, batch, needs_w or needs_b)
            buffers = (grads, d, dn, zrh, n, diff, recurrent_kernel, mask)
            compiled.gru_backward(*buffers, *codes, inputs)
        else:
            _backward_loop(
                grads, d, dn, zrh, n, states, diff, recurrent_kernel, mask, ctx.names, accumulate
            )
        flat_prev = states[:-1].view(-1, units)  # h_{t-1} for every step, (T*B, H)
        flat = d.view(-1, 3 * units)
        grad_x = grad_w = grad_b = grad_b_rec = grad_u = None
        if after:
            d_zr, d_n = flat[:, zr], dn.view(-1, units)  # the gradient of x W + b, in two
            if needs_u:
                grad_u = flat_prev.t() @ flat
            if needs_b_rec:
                grad_b_rec = flat.sum(0)
            if needs_x:
                grad_x = (d_zr @ kernel[:, zr].t()).addmm_(d_n, kernel[:, hh].t())
            if per_row is not None:
                grad_w, grad_b = compiled.narrow_sums(per_row, needs_w, needs_b)
            else:
                if needs_w:
                    grad_w = torch.cat([x_tm.t() @ d_zr, x_tm.t() @ d_n], dim=1)
                if needs_b:
                    grad_b = torch.cat([d_zr.sum(0), d_n.sum(0)])
        else:
            if needs_u:
                grad_u = torch.cat(
                    [
                        flat_prev.t() @ flat[:, zr],
                        zrh[..., hh].reshape(-1, units).t() @ flat[:, hh],
                    ],
                    dim=1,
                )
            if needs_x:
                grad_x = flat @ kernel.t()
            if needs_w:
                grad_w = x_tm.t() @ flat
            if needs_b:
                grad_b = flat.sum(0)
        if grad_x is not None:
            grad_x = grad_x.view(steps, batch, -1).transpose(0, 1)
        grad_h0 = grads[0].clone() if needs_h0 else None  # not a view of the whole buffer
        return grad_x, grad_w, grad_b, grad_b_rec, grad_h0, grad_u, None, None, None, None


def gru_states(
    x,
    h0,
    kernel,
    recurrent_kernel,
    bias=None,
    recurrent_bias=None,
    mask=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=True,
):
    """Every state `h_t` of a GRU, `(B, T, H)`, and the last one, `(B, H)`.

    Use the last state from here rather than slicing the sequence: when nothing else reads
    the sequence, the backward pass then has no all-steps gradient to make and read.

    Args:
        x: `(B, T, D)` inputs.
        h0: `(B, H)` initial state.
        kernel: `W`, `(D, 3H)` (blocks z, r, h).
        recurrent_kernel: `U`, `(H, 3H)`.
        bias: `b`, `(3H,)`, added to `x W`, or None.
        recurrent_bias: `b'`, `(3H,)`, added to `h U` (only with `reset_after`), or None.
        mask: `(B, T)` booleans or None; `False` steps keep the previous state.
        activation, recurrent_activation: names in `ACTIVATIONS` (candidate and gates).
        reset_after: apply the reset gate after the recurrent product (Keras' default).
    """
    if recurrent_bias is not None and not reset_after:
        raise ValueError("a recurrent bias exists only with reset_after=True")
    mask_t = time_major_mask(mask)
    tensors = (x, kernel, bias, recurrent_bias, h0, recurrent_kernel)
    names = (activation, recurrent_activation, reset_after)
    if needs_graph(*tensors):
        states, last = GRURecurrence.apply(*tensors, mask_t, *names)
    else:  # inference: the forward loop alone, no autograd node
        states = _forward(*tensors, mask_t, *names)[3]
        states, last = states[1:], states[-1]
    return states.transpose(0, 1), last  # (B, T, H), (B, H)
