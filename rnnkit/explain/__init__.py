"""rnnkit.explain: see what the recurrence does on your own model, one module per view.

`trace` writes out one sequence's steps through each recurrent layer, every number shown.
`memory` measures how far back the output depends on the input (the memory horizon),
`gradient_flow` the gradient of the loss at every step, `states` the hidden states over time.
`vanishing` runs the notes' experiment: how far back SimpleRNN, LSTM and GRU learn to remember.
"""

from rnnkit.explain.gradients import Flow, gradient_flow
from rnnkit.explain.memory import Memory, memory
from rnnkit.explain.states import LayerStates, States, states
from rnnkit.explain.trace import Trace, trace
from rnnkit.explain.vanishing import Vanishing, vanishing

__all__ = [
    "Flow",
    "LayerStates",
    "Memory",
    "States",
    "Trace",
    "Vanishing",
    "gradient_flow",
    "memory",
    "states",
    "trace",
    "vanishing",
]
