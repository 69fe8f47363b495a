"""What counts as a number, in one place: booleans are not numbers here, numpy scalars are.

``True`` is an ``int`` to Python, and ``budget=True`` or ``seed=False`` is always a mistake;
``np.int64(3)`` or ``np.float32(0.1)`` (what numpy code hands over) is not.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["is_int", "is_number"]


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (Python or numpy, integer or float, finite or not), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
