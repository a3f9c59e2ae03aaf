"""rnnkit.explain: see what the recurrence does on your own model, one module per view.

`trace` writes out one sequence's steps through each recurrent layer, every number shown.
"""

from rnnkit.explain.trace import Trace, trace

__all__ = ["Trace", "trace"]
