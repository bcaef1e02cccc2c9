"""Build filter DBs (published CNN-Filter-DB layout) from trained model files.

Readers (one module per format): ONNX (:mod:`.onnx_reader`), PyTorch zip / legacy / TorchScript
files, state dicts and whole-model pickles, through a restricted unpickler that executes nothing
(:mod:`.torch_reader`), safetensors (:mod:`.safetensors_reader`), Keras 1 / 2 / 3 HDF5 and .keras
(:mod:`.keras_reader`), TFLite (:mod:`.tflite_reader`); :mod:`.formats` picks the reader and names
the reason when a file is not a model file it reads. :mod:`.sheet` reads / merges models sheets,
:mod:`.fetch` gets pinned archives from PyPI, :mod:`.build` writes / appends the DB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Conv, IngestError, ModelFile, UnsafeFileError
from .extract import model_layers, parse_kernel
from .formats import detect_format, read_model_file

__all__ = [
    "Conv",
    "IngestError",
    "ModelFile",
    "UnsafeFileError",
    "detect_format",
    "read_model_file",
    "model_layers",
    "parse_kernel",
    "read_model_layers",
]


def read_model_layers(path, kernel="3x3") -> tuple[list[np.ndarray], pd.DataFrame]:
    """The K x K conv layers of one model file (3x3 by default; used by ``filterdb inspect``).

    Parameters
    ----------
    path : str or PathLike
        A model file of any supported format.
    kernel : str or int
        The kernel size kept, ``"KxK"`` with K odd and at least 3 (see :func:`parse_kernel`).

    Returns
    -------
    (list of ndarray, DataFrame)
        Per K x K layer an ``(out * in/groups, K * K)`` float32 array of its kernels, and a table
        with one row per layer: ``conv_depth``, ``conv_depth_norm``, ``out_channels``,
        ``in_channels``, ``groups``, ``layer_name``, ``conv_kind``, ... and the model-level columns
        repeated.

    Raises
    ------
    IngestError
        A bad ``kernel``, or the file cannot be read (see :func:`read_model_file`).
    """
    k = parse_kernel(kernel)
    m = read_model_file(path)
    weights, layers, cols = model_layers(m, k)
    for k, v in cols.items():
        layers[k] = [v] * len(layers)
    return weights, layers
