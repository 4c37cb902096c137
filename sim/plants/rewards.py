"""dm_control's reward arithmetic, reproduced bit for bit for batched evaluation: `tolerance` and the
scalar square it needs, and the names of MuJoCo's orientation-matrix entries."""
from __future__ import annotations

import functools
import math
from itertools import repeat

import numpy as np

# Entries of MuJoCo's row-major 3x3 body orientation `xmat`, under dm_control's column names
# (`physics.named.data.xmat[body, 'zz']`): the world z component of the body's z axis is 'zz', etc.
XMAT = {f"{row}{col}": 3 * i + j for i, row in enumerate("xyz") for j, col in enumerate("xyz")}
XX, XZ, ZZ = XMAT["xx"], XMAT["xz"], XMAT["zz"]
X, Y, Z = 0, 1, 2  # components of a position (xpos, geom_xpos)


def _c_square(v: float) -> float:
    """`math.pow(v, 2)`, but inf on overflow (as numpy gives) instead of an OverflowError."""
    try:
        return math.pow(v, 2.0)
    except OverflowError:
        return math.inf


def scalar_squares(x: np.ndarray) -> np.ndarray:
    """`v ** 2` for each element as numpy computes it for ONE float64 scalar `v`: C `pow(v, 2)`,
    which is what math.pow calls. It is not always `v * v`, numpy's vectorised square: the two
    differ in the last bit for ~0.1 % of inputs."""
    values = x.tolist()
    try:
        return np.fromiter(map(math.pow, values, repeat(2.0)), np.float64, len(values))
    except OverflowError:
        return np.fromiter(map(_c_square, values), np.float64, len(values))


@functools.lru_cache(maxsize=None)
def _sigmoid_scale(sigmoid: str, value_at_margin: float) -> float:
    """dm_control's `_sigmoids` scale, computed by the same expression."""
    if sigmoid == "gaussian":
        return np.sqrt(-2 * np.log(value_at_margin))
    if sigmoid == "quadratic":
        return np.sqrt(1 - value_at_margin)
    raise ValueError(f"tolerance: sigmoid {sigmoid!r} not implemented (gaussian, quadratic)")


def tolerance(x: np.ndarray, bounds: tuple[float, float] = (0.0, 0.0), margin: float = 0.0,
              sigmoid: str = "gaussian", value_at_margin: float = 0.1, *,
              per_scalar: bool) -> np.ndarray:
    """`dm_control.utils.rewards.tolerance` for each element of the 1-D array `x`, bit for bit.

    The same operations in the same order as dm_control, with one difference that matters for
    exactness: where dm_control is called with one numpy scalar per episode (`per_scalar=True`, e.g.
    the cart position), its `d ** 2` is a scalar power, C `pow`, and that is reproduced per element;
    where it is called with an array (`per_scalar=False`, e.g. `physics.control()`), `** 2` is
    numpy's vectorised square, as here. Only the sigmoids the plants use are implemented.
    """
    lower, upper = bounds
    in_bounds = np.logical_and(lower <= x, x <= upper)
    if margin == 0:
        return np.where(in_bounds, 1.0, 0.0)
    scaled = np.where(x < lower, lower - x, x - upper) / margin * _sigmoid_scale(sigmoid, value_at_margin)
    square = scalar_squares(scaled) if per_scalar else scaled ** 2
    if sigmoid == "gaussian":
        value = np.exp(-0.5 * square)
    else:
        value = np.where(abs(scaled) < 1, 1 - square, 0.0)
    return np.where(in_bounds, 1.0, value)
