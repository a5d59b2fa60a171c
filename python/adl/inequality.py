"""How unequally a loss is shared: the Lorenz curve and the Gini coefficient of per-account
amounts (the haircut distributions of :func:`adl.report`), and the paper's PTSR and PMR.

Amounts below zero (an account the later price moved against, so ADL spared it a loss)
count as zero: the curve is of who *paid*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = np.ndarray[Any, np.dtype[np.float64]]


def _sorted(values: Sequence[float] | Array) -> Array:
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    x = x[np.isfinite(x)]
    return np.sort(x)


def lorenz(values: Sequence[float] | Array) -> tuple[Array, Array]:
    """Points of the Lorenz curve: ``(share of accounts, share of the total)``, from (0, 0) to
    (1, 1), accounts from the smallest amount up. Empty input or a zero total: the diagonal.

    >>> import adl.inequality as q
    >>> [list(map(float, a)) for a in q.lorenz([4.0, 1.0, 3.0, 2.0])]   # cumsum 1, 3, 6, 10 over 10
    [[0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.1, 0.3, 0.6, 1.0]]
    """
    x = _sorted(values)
    total = float(x.sum())
    if len(x) == 0 or total <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    share = np.concatenate(([0.0], np.cumsum(x) / total))
    share[-1] = 1.0  # no float drift at the end point
    return np.linspace(0.0, 1.0, len(x) + 1), share


def gini(values: Sequence[float] | Array) -> float:
    """The Gini coefficient: 0 when everyone pays the same, (n − 1)/n when one of n pays all;
    NaN for no accounts or a zero total. ``G = 2·Σ i·x_(i) / (n·Σ x) − (n + 1)/n`` with the
    amounts sorted up and i from 1.

    >>> import adl.inequality as q
    >>> q.gini([1.0, 2.0, 3.0, 4.0])     # 2·30/(4·10) − 5/4
    0.25
    >>> q.gini([0.0, 0.0, 0.0, 5.0])     # one of four pays all: 3/4
    0.75
    """
    x = _sorted(values)
    n, total = len(x), float(x.sum())
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * float((i * x).sum()) / (n * total) - (n + 1) / n)


def ptsr_pmr(kept: float, residual: float, deficit: float, max_loss: float) -> tuple[float | None, float | None]:
    """PTSR = max(w − x)+ / (D − H) and PMR = PTSR · D / max loss (docs/model.md §4), from the
    largest profit an account kept (``kept``), the residual D − H (bad debt), the deficit D
    and the largest single loss; ``None`` where undefined (no residual, no deficit or loss).

    >>> ptsr_pmr(25.0, 15.0, 60.0, 30.0)
    (1.6666666666666667, 3.3333333333333335)
    """
    ptsr = kept / residual if residual > 0 else None
    pmr = kept / (residual / deficit * max_loss) if residual > 0 and deficit > 0 and max_loss > 0 else None
    return ptsr, pmr
