"""A fused LSTM recurrence with a hand-written backward pass through time.

The cell is Keras' (`rnnkit.layers._lstm.LSTMCell`, gate blocks i, f, c, o):

    forward:   z_t = xw_t + h_{t-1} U                   one (B, 4H) GEMM per step
               i, f, o = σ(z_i), σ(z_f), σ(z_o)          xw = x W + b, one GEMM for all steps
               g   = act(z_c)
               c'  = f c_{t-1} + i g
               h'  = o act(c')
               h_t, c_t = m_t ? (h', c') : (h_{t-1}, c_{t-1})   m = the (batch, timesteps) mask
    backward:  gh = dL/dh_t, gc = dL/dc_t (from the outputs at t, and from step t+1)
               gc' = m (gc + gh o act'(c'))                  all that reaches c'
               dz_o = m gh act(c') σ'(o)
               dz_i, dz_f, dz_c = gc' g σ'(i), gc' c_{t-1} σ'(f), gc' i act'(g)
               dL/dh_{t-1} = dz U^T + (1 - m) gh
               dL/dc_{t-1} = gc' f + (1 - m) gc
               dU = sum_t h_{t-1}^T dz_t, dW = sum_t x_t^T dz_t      one GEMM each, after the loop

`act'` and `σ'` are written in terms of the outputs (see `simple_rnn.ACTIVATIONS`).
Everything is time-major inside, `(T, B, ...)`. On CPU in float32/float64 both loops run
compiled (`compiled.py`, `_loops.cpp`), on these same buffers; the Python loops below run
where the compiled ones cannot, the backward one computing every factor that does not
depend on the recurrence for all steps at once first. With a few input features
(`compiled.narrow_fits`), the compiled loops make `xw` and gather `dW`, `db` themselves.
"""

from __future__ import annotations

import torch

from rnnkit.kernels import compiled
from rnnkit.kernels.simple_rnn import ACTIVATIONS, time_major_mask

# activation name -> act(a) written into `out` (the candidate and act(c') keep their inputs)
INTO = {
    "tanh": lambda a, out: torch.tanh(a, out=out),
    "sigmoid": lambda a, out: torch.sigmoid(a, out=out),
    "relu": lambda a, out: torch.clamp_min(a, 0, out=out),
    "linear": lambda a, out: out.copy_(a),
}


class LSTMRecurrence(torch.autograd.Function):
    """`states, c_T = recurrence(x, W, b, h0, c0, U, mask, activation, recurrent_activation)`;
    shapes `(T, B, D)`, `(D, 4H)`, `(4H,)` or None, `(B, H)`, `(B, H)`, `(H, 4H)`.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold both states) or None.
    Returns every `h_t`, `(T, B, H)`, and the last cell state `c_T`, `(B, H)`.
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, h0, c0, recurrent_kernel, mask, act_name, sigma_name):
        steps, batch, units = x.shape[0], x.shape[1], h0.shape[-1]
        flat_x = x.reshape(steps * batch, -1)  # (T*B, D)
        in_c = compiled.missing(x, recurrent_kernel) is None
        # z_t = x_t W + b + h_{t-1} U is accumulated in place; then the gates. (T, B, 4H)
        inputs = compiled.NO_INPUTS
        if in_c and compiled.narrow_fits(x):  # the compiled loop makes x W + b itself
            gates = x.new_empty(steps, batch, 4 * units)
            inputs = compiled.narrow(flat_x, kernel, bias)
        else:
            xw = flat_x @ kernel if bias is None else torch.addmm(bias, flat_x, kernel)
            gates = xw.view(steps, batch, 4 * units)
        squashed = x.new_empty(steps, batch, units)  # act(c')
        h = x.new_empty(steps + 1, batch, units)  # h_0 .. h_T, so h_{t-1} needs no copy
        c = x.new_empty(steps + 1, batch, units)  # c_0 .. c_T
        h[0], c[0] = h0, c0
        new_c = c if mask is None else torch.empty_like(c)  # c' before the mask
        names = (act_name, sigma_name)
        if in_c:  # the time loop compiled; it writes g = act(z_c) over block c
            g = gates[..., 2 * units : 3 * units]
            buffers = (gates, h, c, new_c, squashed, recurrent_kernel, mask)
            compiled.lstm_forward(*buffers, *names, inputs)
        else:  # σ of every block, block c's σ(z_c) unused (one op instead of two)
            g = x.new_empty(steps, batch, units)  # act(z_c)
            _forward_loop(gates, g, squashed, h, c, new_c, recurrent_kernel, mask, *names)
        ctx.save_for_backward(flat_x, kernel, recurrent_kernel, gates, g, squashed, h, c, mask)
        ctx.names = (act_name, sigma_name, bias is not None)
        ctx.in_c = in_c
        return h[1:], c[steps]

    @staticmethod
    def backward(ctx, grad_h, grad_c_last):
        flat_x, kernel, recurrent_kernel, gates, g, squashed, h, c, mask = ctx.saved_tensors
        act_name, sigma_name, has_bias = ctx.names
        steps, batch, units = g.shape
        per_row = None  # [dW; db] per batch row, gathered in the compiled loop (few features)
        if ctx.in_c:
            gh = grad_h.new_empty(steps + 1, batch, units)  # dL/dh_0 .. dL/dh_T
            gh[0], gh[1:] = 0, grad_h
            gc = grad_c_last.clone(memory_format=torch.contiguous_format)
            dz_all = torch.empty_like(gates)
            names = (act_name, sigma_name, True)
            inputs, per_row = compiled.narrow_gradients(flat_x, kernel, batch, True)
            buffers = (gh, gc, dz_all, gates, c, squashed, recurrent_kernel, mask)
            compiled.lstm_backward(*buffers, *names, inputs)
            gh = gh[0].clone()  # not a view of the whole buffer
        else:
            dz_all, gh, gc = _backward_loop(ctx, grad_h, grad_c_last)
        flat_dz = dz_all.view(-1, 4 * units)  # (T*B, 4H)
        h_prev = h[:-1].reshape(-1, units)  # h_{t-1} for every step, (T*B, H)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (flat_dz @ kernel.t()).view(steps, batch, -1)
        if per_row is not None:
            grad_w, grad_b = compiled.narrow_sums(per_row)  # both: LSTM's are always asked for
        else:
            grad_w, grad_b = flat_x.t() @ flat_dz, flat_dz.sum(0)
        grad_b = grad_b if has_bias else None
        grad_u = h_prev.t() @ flat_dz
        return grad_x, grad_w, grad_b, gh, gc, grad_u, None, None, None


def _forward_loop(gates, g, squashed, h, c, new_c, recurrent_kernel, mask, act_name, sigma_name):
    """The forward loop in Python (where the compiled one cannot run); fills the buffers
    `LSTMRecurrence.forward` makes."""
    act_into = INTO[act_name]
    sigma, _ = ACTIVATIONS[sigma_name]
    units = g.shape[-1]
    hs, cs, new_cs = h.unbind(0), c.unbind(0), new_c.unbind(0)
    for t, (z, g_t, s_t) in enumerate(zip(gates.unbind(0), g.unbind(0), squashed.unbind(0))):
        z.addmm_(hs[t], recurrent_kernel)
        act_into(z[:, 2 * units : 3 * units], g_t)
        sigma(z)
        i, f, o = z[:, :units], z[:, units : 2 * units], z[:, 3 * units :]
        c_t = torch.mul(f, cs[t], out=new_cs[t + 1]).addcmul_(i, g_t)  # f c + i g
        act_into(c_t, s_t)
        if mask is None:
            torch.mul(o, s_t, out=hs[t + 1])
        else:
            torch.where(mask[t], o * s_t, hs[t], out=hs[t + 1])
            torch.where(mask[t], c_t, cs[t], out=cs[t + 1])


def _backward_loop(ctx, grad_h, grad_c_last):
    """The backward loop in Python (where the compiled one cannot run). Returns the gates'
    gradients `(T, B, 4H)`, `dL/dh_0` and `dL/dc_0`."""
    flat_x, kernel, recurrent_kernel, gates, g, squashed, h, c, mask = ctx.saved_tensors
    act_name, sigma_name, has_bias = ctx.names
    _, act_slope = ACTIVATIONS[act_name]
    _, sigma_slope = ACTIVATIONS[sigma_name]
    steps, batch, units = g.shape
    i, f, o = gates[..., :units], gates[..., units : 2 * units], gates[..., 3 * units :]
    # The factors that do not depend on the recurrence, for all steps at once:
    # (Block c of `gates` holds σ(z_c), which nothing uses: no slope for it.)
    slopes_if = sigma_slope(gates[..., : 2 * units])  # σ'(i), σ'(f), (T, B, 2H)
    to_o = squashed * sigma_slope(o)  # dz_o = gh * to_o
    to_c = o * act_slope(squashed)  # gc' = gc + gh * to_c
    to_ifc = g.new_empty(steps, batch, 3, units)  # dz_i, dz_f, dz_c = gc' * to_ifc
    torch.mul(g, slopes_if[..., :units], out=to_ifc[:, :, 0])
    torch.mul(c[:-1], slopes_if[..., units:], out=to_ifc[:, :, 1])
    torch.mul(i, act_slope(g), out=to_ifc[:, :, 2])
    keep = hold = None
    if mask is not None:
        keep = mask.to(g.dtype)  # (T, B, 1): a masked step passes gh and gc straight back
        to_o, to_c = to_o * keep, to_c * keep
        keep, hold = keep.unbind(0), (1 - keep).unbind(0)
    u_t = recurrent_kernel.t()
    dz_all = torch.empty_like(gates)  # the gradient of z = xw + h U, (T, B, 4H)
    dzs, grads_h = dz_all.unbind(0), grad_h.unbind(0)
    dz_ifc = dz_all[..., : 3 * units].unflatten(-1, (3, units)).unbind(0)  # (B, 3, H) views
    to_os, to_cs, to_ifcs, fs = to_o.unbind(0), to_c.unbind(0), to_ifc.unbind(0), f.unbind(0)
    gh, gc = grads_h[steps - 1], grad_c_last
    for t in range(steps - 1, -1, -1):
        dz = dzs[t]
        torch.mul(gh, to_os[t], out=dz[:, 3 * units :])
        gc_new = torch.addcmul(gc if keep is None else gc * keep[t], gh, to_cs[t])
        torch.mul(gc_new.unsqueeze(1), to_ifcs[t], out=dz_ifc[t])
        back_c = gc_new.mul_(fs[t])
        if hold is None:
            back_h = grads_h[t - 1] if t > 0 else None
            gc = back_c
        else:
            back_h = torch.addcmul(grads_h[t - 1], gh, hold[t]) if t > 0 else gh * hold[t]
            gc = back_c.addcmul_(gc, hold[t])
        gh = dz @ u_t if back_h is None else torch.addmm(back_h, dz, u_t)
    return dz_all, gh, gc


def lstm_states(
    x,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias=None,
    mask=None,
    activation="tanh",
    recurrent_activation="sigmoid",
):
    """Every state `h_t` of an LSTM, `(B, T, H)`, and the last cell state `c_T`, `(B, H)`.

    Args:
        x: `(B, T, D)` inputs.
        h0, c0: `(B, H)` initial states.
        kernel, recurrent_kernel, bias: `W` `(D, 4H)`, `U` `(H, 4H)`, `b` `(4H,)` or None,
            blocks i, f, c, o.
        mask: `(B, T)` booleans or None; `False` steps keep both previous states.
        activation, recurrent_activation: names in `ACTIVATIONS` (candidate and cell
            output; the gates).
    """
    x_t = x.transpose(0, 1).contiguous()  # (T, B, D)
    mask_t = time_major_mask(mask)
    states, c_last = LSTMRecurrence.apply(
        x_t, kernel, bias, h0, c0, recurrent_kernel, mask_t, activation, recurrent_activation
    )
    return states.transpose(0, 1), c_last  # (B, T, H), (B, H)
