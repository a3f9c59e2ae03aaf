"""A fused SimpleRNN recurrence with a hand-written backward pass through time.

The reference loop (`rnnkit.layers._rnn.RNN.call`) records several autograd
nodes per time step. Here the whole recurrence is one node:

    forward:   a_t = act(xw_t + h_{t-1} U)        xw = x W + b, one GEMM for all steps
               h_t = m_t ? a_t : h_{t-1}          m = the (batch, timesteps) mask
    backward:  g_t  = dL/dh_t  (from the output at t, plus what flows back from t+1)
               dz_t = (m_t * g_t) * act'(a_t)
               dL/dh_{t-1} = dz_t U^T + (1 - m_t) * g_t
               dU = sum_t h_{t-1}^T dz_t          one GEMM after the loop

`act'` is written in terms of the output `a` (tanh: 1 - a², sigmoid: a(1 - a),
relu: a > 0, linear: 1), so the forward pass keeps only `a` and `h`.
Everything is time-major inside, `(T, B, H)`, so each step reads and writes a
contiguous slab.
"""

from __future__ import annotations

import torch

# activation name -> (in-place forward, derivative from the output)
ACTIVATIONS = {
    "tanh": (torch.tanh_, lambda a: 1 - a * a),
    "sigmoid": (torch.sigmoid_, lambda a: a * (1 - a)),
    "relu": (torch.relu_, lambda a: (a > 0).to(a.dtype)),
    "linear": (lambda a: a, lambda a: torch.ones_like(a)),
}


class SimpleRNNRecurrence(torch.autograd.Function):
    """`states = recurrence(xw, h0, U, mask, activation)`; shapes `(B, T, H)`, `(B, H)`, `(H, H)`.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold the state) or None.
    Returns the state after every step, time-major: `(T, B, H)`.
    """

    @staticmethod
    def forward(ctx, xw, h0, recurrent_kernel, mask, activation: str):
        act, _ = ACTIVATIONS[activation]
        batch, steps, units = xw.shape
        # a_t = xw_t + h_{t-1} U is accumulated in place on a time-major copy of xw (one copy
        # for all steps). Row 0 of the state buffer is h_0, so h_{t-1} for every step is a
        # view in the backward pass, not a concatenation.
        a_all = xw.new_empty(steps + 1, batch, units)  # (T + 1, B, H)
        a = a_all[1:]
        a.copy_(xw.transpose(0, 1))
        # Without a mask no step is held, so the states are the activations themselves.
        h_all = a_all if mask is None else xw.new_empty(steps + 1, batch, units)
        h_all[0] = h0
        states, a_steps, keep = (
            h_all.unbind(0),
            a.unbind(0),
            mask.unbind(0) if mask is not None else None,
        )
        for t in range(steps):
            a_t = a_steps[t].addmm_(states[t], recurrent_kernel)
            act(a_t)
            if keep is not None:
                torch.where(keep[t], a_t, states[t], out=states[t + 1])
        ctx.save_for_backward(recurrent_kernel, a, h_all, mask)
        ctx.activation = activation
        return h_all[1:]

    @staticmethod
    def backward(ctx, grad_h):
        recurrent_kernel, a, h_all, mask = ctx.saved_tensors
        _, derivative = ACTIVATIONS[ctx.activation]
        steps, _, units = a.shape
        grad_z = torch.empty_like(a)  # (T, B, H)
        u_t = recurrent_kernel.t()
        # Everything that does not depend on the recurrence is computed for all steps at once,
        # so the loop is two or three small ops per step.
        slope = derivative(a)  # act'(z_t), (T, B, H)
        hold = None
        if mask is not None:
            keep = mask.to(a.dtype)  # (T, B, 1)
            slope = slope * keep  # a masked step sends nothing through the cell
            hold = (1 - keep).unbind(0)  # ... its gradient goes straight to h_{t-1}
        slopes, grads_z, grads_h = slope.unbind(0), grad_z.unbind(0), grad_h.unbind(0)
        g = grads_h[steps - 1]  # dL/dh_t: from the output at t and from step t+1
        for t in range(steps - 1, -1, -1):
            dz = torch.mul(g, slopes[t], out=grads_z[t])
            # dL/dh_{t-1} = dz U^T (+ g on a held step) + what the output at t-1 receives
            if hold is None:
                back = grads_h[t - 1] if t > 0 else None
            elif t > 0:
                back = torch.addcmul(grads_h[t - 1], g, hold[t])
            else:
                back = g * hold[t]
            g = dz @ u_t if back is None else torch.addmm(back, dz, u_t)
        h_prev = h_all[:-1].reshape(-1, units)  # h_{t-1} for every step, (T*B, H)
        grad_u = h_prev.t() @ grad_z.reshape(-1, units)
        return grad_z.transpose(0, 1), g, grad_u, None, None


def torch_rnn_inference(x, h0, kernel, recurrent_kernel, bias, activation):
    """torch's C++ RNN loop for inference (no autograd, no mask, tanh or relu): the fastest way
    to run one short sequence. Returns every state, `(B, T, H)`."""
    run = torch.rnn_tanh if activation == "tanh" else torch.rnn_relu
    params = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    states, _ = run(x, h0.unsqueeze(0), params, bias is not None, 1, 0.0, False, False, True)
    return states


def simple_rnn_states(xw, h0, recurrent_kernel, mask=None, activation="tanh"):
    """Every state `h_t` of a SimpleRNN, `(B, T, H)`, from the projected inputs `xw = x W + b`.

    Args:
        xw: `(B, T, H)` input projections.
        h0: `(B, H)` initial state.
        recurrent_kernel: `U`, `(H, H)`.
        mask: `(B, T)` booleans or None; `False` steps keep the previous state.
        activation: one of `ACTIVATIONS`.
    """
    mask_t = None
    if mask is not None:
        mask_t = mask.transpose(0, 1).unsqueeze(-1).bool().contiguous()  # (T, B, 1)
    states = SimpleRNNRecurrence.apply(xw, h0, recurrent_kernel, mask_t, activation)
    return states.transpose(0, 1)  # (B, T, H)
