import numpy as np
import pandas as pd
import pytest

from filterdb.axes import STUDY_AXES
from filterdb.synth import write_synth_db

DEFAULT_AXES = STUDY_AXES  # the defaults of config.yaml (checked in test_config_defaults)


@pytest.fixture(scope="session", params=["v1.0", "v0.1"])
def synth_db(request, tmp_path_factory):
    """A small generated DB in each published layout ((N, 9) for v1.0, (N, 3, 3) for v0.1)."""
    layout = request.param
    path = tmp_path_factory.mktemp(f"db_{layout}") / "dataset.h5"
    layers = write_synth_db(path, layout=layout, shape3x3=(layout == "v0.1"), seed=3, n_models=14)
    return layout, str(path), layers


def study_scale(x):
    """The study's notebook cells, the default precision (docs/method.md §1): ``d =
    x.astype(np.float16)`` and ``d / np.abs(d).max(axis=1)`` in float16 (an all-zero row divided by
    1), returned as float64."""
    with np.errstate(over="ignore"):
        x = np.asarray(x)
        x = x if x.ndim == 2 else x.reshape(len(x), -1) if x.ndim > 2 else x.reshape(-1, 9)  # 1-D: 3x3 rows
        d = x.astype(np.float16)
    peak = np.abs(d).max(axis=1)
    peak[peak == 0] = 1
    return (d / peak[:, None]).astype(np.float64)


def load_all(path):
    """Plain reference: the whole filter array and the raw meta, read directly."""
    import h5py

    with h5py.File(path, "r") as f:
        key = "filters" if "filters" in f else "filter"
        x = f[key][...]
        x = x.reshape(len(x), -1).astype(np.float64)  # (N, k, k) or (N, k²): one filter per row
    meta = pd.read_hdf(path, "meta").reset_index()
    return x, meta
