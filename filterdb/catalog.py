"""The models of a DB, from its meta table alone (``filterdb models``): which models are in it,
what they were trained on and how many 3x3 filters each holds, without reading a filter.

One row per model (``model_id`` order): ``model`` (the meta's unique id, or ``model_id`` where the
DB has no ``model`` column), ``Name``, ``Task``, ``Visual Category`` (v0.1: ``Datatype``),
``Training-Dataset``, ``Pretraining-Dataset``, ``producer`` (empty where the DB lacks the column),
``layers`` (its 3x3 conv layers), ``filters_3x3`` (their filters), ``share_3x3`` (the meta's
``3x3_filter_share``: the 3x3 kernels' share of all the model's conv kernels; NaN where absent) and
``model_id``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .db import find_column

#: The descriptive columns, in order (the first value a model's layers hold).
COLUMNS = ["Name", "Task", "Visual Category", "Training-Dataset", "Pretraining-Dataset", "producer"]


def models_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per model of the layer table :func:`filterdb.db.open_db` returns.

    Parameters
    ----------
    layers : pandas.DataFrame
        ``FilterDB.layers``: ``model_id``, ``n_filters`` and the meta columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, :data:`COLUMNS`, ``layers``, ``filters_3x3``, ``share_3x3``, ``model_id``.
    """
    order = layers.sort_values("model_id", kind="stable")
    g = order.groupby("model_id", sort=True)
    out = pd.DataFrame({"model_id": np.asarray(list(g.groups), dtype=np.int64)})
    first = g.first()
    out["model"] = (
        (first["model"] if "model" in first else pd.Series(out["model_id"].to_numpy(), index=first.index))
        .astype(str)
        .to_numpy()
    )
    for name in COLUMNS:
        col = find_column(layers.columns, name)
        out[name] = first[col].to_numpy() if col else ""
    out["layers"] = g.size().to_numpy().astype(np.int64)
    out["filters_3x3"] = g["n_filters"].sum().to_numpy().astype(np.int64)
    share = first["3x3_filter_share"] if "3x3_filter_share" in first else pd.Series(np.nan, index=first.index)
    out["share_3x3"] = pd.to_numeric(share, errors="coerce").to_numpy(float)
    return out[["model", *COLUMNS, "layers", "filters_3x3", "share_3x3", "model_id"]]
