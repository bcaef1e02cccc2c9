"""Build filter DBs (published CNN-Filter-DB layout) from trained model files.

Readers (one module per format): ONNX (:mod:`.onnx_reader`), PyTorch zip / legacy files through a
restricted unpickler (:mod:`.torch_reader`), safetensors (:mod:`.safetensors_reader`), Keras HDF5 /
.keras (:mod:`.keras_reader`), TFLite (:mod:`.tflite_reader`). :mod:`.sheet` reads a models sheet,
:mod:`.fetch` gets pinned archives from PyPI, :mod:`.build` writes / appends the DB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Conv, IngestError, ModelFile, UnsafeFileError
from .extract import model_layers
from .formats import detect_format, read_model_file

__all__ = ["Conv", "IngestError", "ModelFile", "UnsafeFileError", "detect_format", "read_model_file",
           "model_layers", "read_model_layers"]


def read_model_layers(path) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The 3x3 conv layers of one model file (used by ``filterdb inspect``).

    Parameters
    ----------
    path : str or PathLike
        A model file of any supported format.

    Returns
    -------
    (list of ndarray, DataFrame)
        Per 3x3 layer an ``(out * in/groups, 9)`` float32 array of its kernels, and a table with one
        row per layer: ``conv_depth``, ``conv_depth_norm``, ``out_channels``, ``in_channels``,
        ``groups``, ``layer_name``, ... and the model-level columns repeated.

    Raises
    ------
    IngestError
        The file cannot be read (see :func:`read_model_file`).
    """
    m = read_model_file(path)
    weights, layers, cols = model_layers(m)
    for k, v in cols.items():
        layers[k] = [v] * len(layers)
    return weights, layers
