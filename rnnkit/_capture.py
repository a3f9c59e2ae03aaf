"""Whether fit is recording its training step into a CUDA graph (`rnnkit.training._graph`).

A check that reads a tensor's values on the host (the token ids an Embedding gets, the class
ids a loss gets, whether a mask holds any step back) waits for the GPU, which a CUDA graph
cannot record, and the graph replays the same kernels whatever the data. While this is set,
those checks skip themselves: fit ran them on all of its data before recording. A branch on
the data takes the way that is right for any data (a mask: the loop that holds steps).
"""

from __future__ import annotations

import contextlib

_recording = [False]


def in_graph() -> bool:
    """Whether the step now running is being recorded into a CUDA graph."""
    return _recording[0]


@contextlib.contextmanager
def recording():
    _recording[0] = True
    try:
        yield
    finally:
        _recording[0] = False
