"""A fused GRU recurrence with a hand-written backward pass through time.

The cell is Keras' (`rnnkit.layers._gru.GRUCell`, blocks z, r, h); with `reset_after=True`:

    forward:   hu_t = h_{t-1} U + b'                    one (B, 3H) GEMM per step
               z, r = σ(xw_z + hu_z), σ(xw_r + hu_r)    xw = x W + b, one GEMM for all steps
               n_t  = act(xw_h + r * hu_h)
               a_t  = n_t + z * (h_{t-1} - n_t)         = z h_{t-1} + (1 - z) n_t
               h_t  = m_t ? a_t : h_{t-1}               m = the (batch, timesteps) mask
    backward:  g = dL/dh_t (from the output at t, plus what flows back from t+1)
               dn' = m g (1 - z) act'(n)                  (the pre-activation of n)
               dz' = m g (h_{t-1} - n) σ'(z)
               dr' = dn' hu_h σ'(r)
               dL/dh_{t-1} = [dz', dr', dn' r] U^T + g (m z + 1 - m)
               dU = sum_t h_{t-1}^T [dz', dr', dn' r]      one GEMM after the loop

With `reset_after=False` the reset gate acts before the product: `n = act(xw_h + (r h) U_h)`,
so a step has two GEMMs (`h U_zr`, then `(r h) U_h`) and no recurrent bias.

`act'` and `σ'` are written in terms of the outputs (see `simple_rnn.ACTIVATIONS`), and
every factor that does not depend on the recurrence is computed for all steps at once
before the backward loop, which is then a handful of small ops per step. Everything is
time-major inside, `(T, B, ...)`.
"""

from __future__ import annotations

import torch

from rnnkit.kernels.simple_rnn import ACTIVATIONS


class GRURecurrence(torch.autograd.Function):
    """`states = recurrence(xw, h0, U, b_rec, mask, activation, recurrent_activation,
    reset_after)`; shapes `(T, B, 3H)`, `(B, H)`, `(H, 3H)`, `(3H,)` or None.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold the state) or None.
    Returns the state after every step, `(T, B, H)`.
    """

    @staticmethod
    def forward(ctx, xw, h0, recurrent_kernel, recurrent_bias, mask, act_name, sigma_name, after):
        act, _ = ACTIVATIONS[act_name]
        sigma, _ = ACTIVATIONS[sigma_name]
        steps, units = xw.shape[0], h0.shape[-1]
        gates = xw.new_empty(steps, *h0.shape[:-1], 2 * units)  # σ(z), σ(r), (T, B, 2H)
        n = xw.new_empty(steps, *h0.shape)  # candidates, (T, B, H)
        states = xw.new_empty(steps + 1, *h0.shape)  # h_0 .. h_T, so h_{t-1} needs no copy
        states[0] = h0
        u_zr, u_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]
        if after:
            hu = xw.new_empty(steps, *h0.shape[:-1], 3 * units)  # h_{t-1} U + b', (T, B, 3H)
        else:
            rh = xw.new_empty(steps, *h0.shape)  # r * h_{t-1}, (T, B, H)
        for t in range(steps):
            prev, x_t, g_t, n_t = states[t], xw[t], gates[t], n[t]
            if after:
                if recurrent_bias is None:
                    torch.mm(prev, recurrent_kernel, out=hu[t])
                else:
                    torch.addmm(recurrent_bias, prev, recurrent_kernel, out=hu[t])
                torch.add(x_t[:, : 2 * units], hu[t, :, : 2 * units], out=g_t)
                sigma(g_t)
                torch.mul(g_t[:, units:], hu[t, :, 2 * units :], out=n_t)
                n_t.add_(x_t[:, 2 * units :])
            else:
                torch.addmm(x_t[:, : 2 * units], prev, u_zr, out=g_t)
                sigma(g_t)
                torch.mul(g_t[:, units:], prev, out=rh[t])
                torch.addmm(x_t[:, 2 * units :], rh[t], u_h, out=n_t)
            act(n_t)
            new = (
                torch.sub(prev, n_t)
                if mask is not None
                else torch.sub(prev, n_t, out=states[t + 1])
            )
            new.mul_(g_t[:, :units]).add_(n_t)  # n + z (h_{t-1} - n)
            if mask is not None:
                torch.where(mask[t], new, prev, out=states[t + 1])
        saved = hu if after else rh
        ctx.save_for_backward(recurrent_kernel, gates, n, states, saved, mask)
        ctx.names = (act_name, sigma_name, after, recurrent_bias is not None)
        return states[1:]

    @staticmethod
    def backward(ctx, grad_h):
        recurrent_kernel, gates, n, states, saved, mask = ctx.saved_tensors
        act_name, sigma_name, after, has_bias = ctx.names
        _, act_slope = ACTIVATIONS[act_name]
        _, sigma_slope = ACTIVATIONS[sigma_name]
        steps, units = n.shape[0], n.shape[-1]
        prev = states[:-1]  # h_{t-1} for every step, (T, B, H)
        z, r = gates[..., :units], gates[..., units:]
        # The factors that do not depend on the recurrence, for all steps at once:
        slopes = sigma_slope(gates)  # σ'(z), σ'(r), (T, B, 2H)
        to_n = (1 - z) * act_slope(n)  # dL/dn' = g * to_n
        to_z = (prev - n) * slopes[..., :units]  # dL/dz' = g * to_z
        carry = z  # dL/dh_{t-1} gets g * carry directly
        if mask is not None:
            keep = mask.to(n.dtype)  # (T, B, 1): a masked step passes g straight back
            to_n, to_z = to_n * keep, to_z * keep
            carry = z * keep + (1 - keep)
        u_t = recurrent_kernel.t()
        dxw = n.new_empty(*n.shape[:-1], 3 * units)  # dz', dr', dn': the gradient of xw
        if after:
            to_r = saved[..., 2 * units :] * slopes[..., units:]  # hu_h σ'(r)
            dhu = torch.empty_like(dxw)  # dz', dr', dn' r: the gradient of hu
        else:
            to_r = prev * slopes[..., units:]  # dL/dr' = (dn' U_h^T) h_{t-1} σ'(r)
            u_zr_t, u_h_t = u_t[: 2 * units], u_t[2 * units :]
        g = grad_h[steps - 1]
        for t in range(steps - 1, -1, -1):
            d = dhu[t] if after else dxw[t]  # dz' and dr' go straight into the GEMM's operand
            dn = torch.mul(g, to_n[t], out=dxw[t, :, 2 * units :])
            torch.mul(g, to_z[t], out=d[:, :units])
            direct = torch.mul(g, carry[t]) if t == 0 else torch.addcmul(grad_h[t - 1], g, carry[t])
            if after:
                torch.mul(dn, to_r[t], out=d[:, units : 2 * units])
                torch.mul(dn, r[t], out=d[:, 2 * units :])
                g = torch.addmm(direct, d, u_t)
            else:
                d_rh = dn @ u_h_t  # dL/d(r h_{t-1}), (B, H)
                torch.mul(d_rh, to_r[t], out=d[:, units : 2 * units])
                direct.addcmul_(d_rh, r[t])
                g = torch.addmm(direct, d[:, : 2 * units], u_zr_t)
        flat_prev = prev.reshape(-1, units)  # (T*B, H)
        if after:
            dxw[..., : 2 * units] = dhu[..., : 2 * units]
            flat = dhu.reshape(-1, 3 * units)
            grad_u = flat_prev.t() @ flat
            grad_b = flat.sum(0) if has_bias else None
        else:
            grad_u = torch.cat(
                [
                    flat_prev.t() @ dxw[..., : 2 * units].reshape(-1, 2 * units),
                    saved.reshape(-1, units).t() @ dxw[..., 2 * units :].reshape(-1, units),
                ],
                dim=1,
            )
            grad_b = None
        return dxw, g, grad_u, grad_b, None, None, None, None


def gru_states(
    xw,
    h0,
    recurrent_kernel,
    recurrent_bias=None,
    mask=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=True,
):
    """Every state `h_t` of a GRU, `(B, T, H)`, from the projected inputs `xw = x W + b`.

    Args:
        xw: `(B, T, 3H)` input projections (blocks z, r, h), input bias included.
        h0: `(B, H)` initial state.
        recurrent_kernel: `U`, `(H, 3H)`.
        recurrent_bias: `b'`, `(3H,)`, added to `h U` (only with `reset_after`), or None.
        mask: `(B, T)` booleans or None; `False` steps keep the previous state.
        activation, recurrent_activation: names in `ACTIVATIONS` (candidate and gates).
        reset_after: apply the reset gate after the recurrent product (Keras' default).
    """
    xw_t = xw.transpose(0, 1).contiguous()  # (T, B, 3H)
    mask_t = None
    if mask is not None:
        mask_t = mask.transpose(0, 1).unsqueeze(-1).bool().contiguous()  # (T, B, 1)
    states = GRURecurrence.apply(
        xw_t,
        h0,
        recurrent_kernel,
        recurrent_bias,
        mask_t,
        activation,
        recurrent_activation,
        reset_after,
    )
    return states.transpose(0, 1)  # (B, T, H)
