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
    """`states = recurrence(xw, h0, U, mask, activation)`; shapes `(T, B, H)`, `(B, H)`, `(H, H)`.

    `mask` is `(T, B, 1)` booleans (True: step, False: hold the state) or None.
    Returns the state after every step, `(T, B, H)`.
    """

    @staticmethod
    def forward(ctx, xw, h0, recurrent_kernel, mask, activation: str):
        act, _ = ACTIVATIONS[activation]
        steps = xw.shape[0]
        a = torch.empty_like(xw)  # activations, (T, B, H)
        h = torch.empty_like(xw) if mask is not None else a
        prev = h0
        for t in range(steps):
            torch.addmm(xw[t], prev, recurrent_kernel, out=a[t])
            act(a[t])
            if mask is not None:
                torch.where(mask[t], a[t], prev, out=h[t])
            prev = h[t]
        ctx.save_for_backward(h0, recurrent_kernel, a, h, mask)
        ctx.activation = activation
        return h

    @staticmethod
    def backward(ctx, grad_h):
        h0, recurrent_kernel, a, h, mask = ctx.saved_tensors
        _, derivative = ACTIVATIONS[ctx.activation]
        steps = a.shape[0]
        grad_z = torch.empty_like(a)  # (T, B, H)
        u_t = recurrent_kernel.t()
        # Everything that does not depend on the recurrence is computed for all steps at once,
        # so the loop is two or three small ops per step.
        slope = derivative(a)  # act'(z_t), (T, B, H)
        hold = None
        if mask is not None:
            keep = mask.to(a.dtype)  # (T, B, 1)
            slope = slope * keep  # a masked step sends nothing through the cell
            hold = 1 - keep  # ... its gradient goes straight to h_{t-1}
        g = grad_h[steps - 1]  # dL/dh_t: from the output at t and from step t+1
        for t in range(steps - 1, -1, -1):
            torch.mul(g, slope[t], out=grad_z[t])
            back = g * hold[t] if hold is not None else None
            carry = grad_z[t] @ u_t if back is None else torch.addmm(back, grad_z[t], u_t)
            if t > 0:
                g = carry + grad_h[t - 1]
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, H)
        units = h0.shape[-1]
        grad_u = h_prev.reshape(-1, units).t() @ grad_z.reshape(-1, units)
        return grad_z, carry, grad_u, None, None


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
    xw_t = xw.transpose(0, 1).contiguous()  # (T, B, H)
    mask_t = None
    if mask is not None:
        mask_t = mask.transpose(0, 1).unsqueeze(-1).bool().contiguous()  # (T, B, 1)
    states = SimpleRNNRecurrence.apply(xw_t, h0, recurrent_kernel, mask_t, activation)
    return states.transpose(0, 1)  # (B, T, H)
