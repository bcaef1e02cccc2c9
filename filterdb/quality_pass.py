"""Per-layer filter quality in the streamed ``sums`` pass (docs/method.md §9).

:class:`QualityAccumulator` is one of the pass accumulators of :mod:`filterdb.stats`: it keeps one
entry per layer and computes the metrics of :mod:`filterdb.quality` on each layer's unscaled
weights. Importing this module pulls in numpy (and numba through :mod:`filterdb.kernels` on first
use), never pandas or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .quality import DEFAULT_EPS, layer_quality_fast

if TYPE_CHECKING:
    import pandas as pd


class QualityAccumulator:
    """Per-layer quality metrics in the streamed ``sums`` pass (unscaled weights).

    Arrays (first axis = layer), stored in ``stats/sums.npz``: ``quality_n_filters``,
    ``quality_n_sparse``, ``quality_sparsity``, ``quality_variance_entropy``,
    ``quality_variance_entropy_norm``, ``quality_variance_entropy_clean``,
    ``quality_orthogonality``, ``quality_absmax``, ``quality_notes`` (bit mask,
    :data:`filterdb.quality.NOTES`). ``out_channels`` comes from the layer-table row (missing column
    or NaN: no orthogonality).

    Parameters
    ----------
    n_layers : int
        Number of layers ``L`` of the pass.
    eps : float
        Sparsity threshold (:func:`filterdb.quality.sparse_mask`).
    **_ignored
        Other pass settings (accepted and ignored).

    Examples
    --------
    >>> acc = QualityAccumulator(1)
    >>> acc.add(0, np.eye(9), None, None, {"out_channels": 3})
    >>> float(acc.arrays()["quality_sparsity"][0])
    0.0
    """

    needs_coefficients = False
    FIELDS = ["n_filters", "n_sparse", "sparsity", "variance_entropy", "variance_entropy_norm",
              "variance_entropy_clean", "orthogonality", "absmax", "notes"]

    def __init__(self, n_layers: int, eps: float = DEFAULT_EPS, **_ignored):
        self.eps = float(eps)
        self.values = {f: (np.zeros(n_layers, np.int64) if f in ("n_filters", "n_sparse", "notes")
                           else np.full(n_layers, np.nan)) for f in self.FIELDS}

    def add(self, i: int, w: np.ndarray, scaled, coef, row: pd.Series) -> None:
        """Compute the metrics of layer ``i``.

        Parameters
        ----------
        i : int
            Position of the layer in the pass (``0 <= i < L``).
        w : numpy.ndarray, shape (n, 9)
            The layer's unscaled filters.
        scaled, coef
            Unused (the peak-scaled filters and coefficients other accumulators use).
        row : pandas.Series or Mapping or None
            The layer-table row (``out_channels`` read from it when present).
        """
        out = row.get("out_channels", None) if row is not None else None
        q = layer_quality_fast(w, out, self.eps)
        for f in self.FIELDS:
            self.values[f][i] = q[f]

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-layer arrays, keys ``quality_{field}``.

        Returns
        -------
        dict of str to numpy.ndarray, each shape (L,)
            int64 for ``n_filters``, ``n_sparse``, ``notes``; float64 otherwise.
        """
        return {f"quality_{f}": v for f, v in self.values.items()}
