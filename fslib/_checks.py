"""Input checks shared by the public functions.

Each check raises :class:`fslib.errors.InvalidInputError` (a ``ValueError``)
or ``TypeError`` with one message form: the parameter, the value it got, what
was expected and how to fix it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .errors import InvalidInputError


def as_size(size: Any, name: str = "size") -> tuple[int, int]:
    """Normalise an int or an ``(H, W)`` pair into a pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif isinstance(size, (tuple, list, torch.Size)) and len(size) == 2:
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
            raise TypeError(f"Invalid {name}: expected integers, got {size!r}. Pass e.g. 32 or (32, 48).")
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"Invalid {name}: expected an int or an (H, W) pair, got {size!r}. Pass e.g. 32 or (32, 48).")
    if pair[0] < 1 or pair[1] < 1:
        raise InvalidInputError(f"Invalid {name}: sizes must be positive, got {pair}. Pass e.g. 32 or (32, 48).")
    return pair


def check_tensor(x: Any, name: str, *, ndim: int | Sequence[int], shape_doc: str) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of the given rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"Invalid {name}: expected a torch.Tensor {shape_doc}, got {type(x).__name__}. "
            "Convert with torch.as_tensor(x)."
        )
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in ranks:
        raise InvalidInputError(
            f"Invalid {name}: expected shape {shape_doc}, got {tuple(x.shape)}. "
            "Add or remove dimensions to match, e.g. x.unsqueeze(0) for a single item."
        )
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(
            f"Invalid {name}: expected a real floating tensor, got dtype {x.dtype}. "
            "Convert with x.float()."
        )
    if any(s == 0 for s in x.shape):
        raise InvalidInputError(f"Invalid {name}: the tensor is empty, shape {tuple(x.shape)}. Pass at least one item.")
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or infinite values."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InvalidInputError(
            f"Invalid {name}: {bad} value(s) are NaN or infinite. "
            "Clean the input (e.g. torch.nan_to_num) before passing it."
        )


def check_number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 min_inclusive: bool = True, max_inclusive: bool = True, allow_inf: bool = False) -> float:
    """Check that ``value`` is a real number inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Invalid {name}: expected a number, got {value!r}.")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise InvalidInputError(f"Invalid {name}: expected a finite number, got {value}.")
    if minimum is not None and (value < minimum or (value == minimum and not min_inclusive)):
        bound = ">=" if min_inclusive else ">"
        raise InvalidInputError(f"Invalid {name}: expected a value {bound} {minimum}, got {value}.")
    if maximum is not None and (value > maximum or (value == maximum and not max_inclusive)):
        bound = "<=" if max_inclusive else "<"
        raise InvalidInputError(f"Invalid {name}: expected a value {bound} {maximum}, got {value}.")
    return value


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidInputError(f"Invalid {name}: got {value!r}, expected one of {', '.join(map(repr, choices))}.")
    return value
