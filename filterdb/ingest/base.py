"""Common types of the model-file readers.

Every reader returns a :class:`ModelFile`: the model's 4-D convolutions in graph (or file) order,
each with its weight as ``(out, in/groups, kh, kw)`` float32, its group count and, for graph
formats, its graph depth. Errors are :class:`IngestError` with a one-line message naming the
file and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np


class IngestError(ValueError):
    """A model file that cannot be read (one line, naming the file and the reason)."""


class UnsafeFileError(IngestError):
    """A pickle that would need classes or functions outside the allowed tensor-rebuild set."""


@dataclass
class Conv:
    """One 4-D convolution of a model.

    ``weight``: float32 ``(out, in/groups, kh, kw)``; ``groups``: 0 when unknown (plain state
    dicts); ``in_channels``: ``in/groups * groups`` when groups is known, else ``in/groups``;
    ``depth``: the node's graph depth (longest path from a graph input), or ``None`` when the
    file has no graph (state dicts: the conv's position in the file is used); ``kind``: what the
    format's op says (``"depthwise"`` for TFLite ``DEPTHWISE_CONV_2D``, Keras ``DepthwiseConv2D``
    and the depthwise part of ``SeparableConv2D``), ``None`` to derive it from ``groups``
    (:attr:`conv_kind`).
    """

    name: str
    weight: np.ndarray
    groups: int = 1
    in_channels: int = 0
    depth: float | None = None
    op: str = ""
    kind: str | None = None

    @property
    def conv_kind(self) -> str:
        """``"full"``, ``"depthwise"``, ``"grouped"``, or ``""`` when unknown (see :func:`conv_kind`)."""
        return self.kind if self.kind is not None else conv_kind(self.groups, int(self.weight.shape[1]))

    @property
    def out_channels(self) -> int:
        """Number of output channels (``weight.shape[0]``)."""
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> tuple[int, int]:
        """``(kh, kw)``."""
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def n_kernels(self) -> int:
        """Number of 2-D kernels (``out * in/groups``)."""
        return int(self.weight.shape[0] * self.weight.shape[1])


@dataclass
class ModelFile:
    """What a reader found in one file."""

    path: str
    format: str
    convs: list[Conv]
    depth_source: str  # "graph" or "weight_order"
    bn_folded: bool | None = None  # True: no separate BatchNorm in the file (weights are the inference weights)
    producer: str = ""
    extra: dict = field(default_factory=dict)  # further meta columns (op_set, depth, ...)


def conv_kind(groups: int, in_per_group: int) -> str:
    """The kind of a convolution from its group count.

    Parameters
    ----------
    groups : int
        Group count; 0 when the file does not tell (plain state dicts, safetensors).
    in_per_group : int
        Input channels per group (``weight.shape[1]``).

    Returns
    -------
    str
        ``"full"`` (one group), ``"depthwise"`` (more than one group, one input channel each: as
        many groups as input channels), ``"grouped"`` (more than one group of several input
        channels each) or ``""`` (unknown).

    Examples
    --------
    >>> conv_kind(1, 3), conv_kind(32, 1), conv_kind(4, 8), conv_kind(0, 1)
    ('full', 'depthwise', 'grouped', '')
    """
    if groups <= 0:
        return ""
    if groups == 1:
        return "full"
    return "depthwise" if in_per_group == 1 else "grouped"


def as_float32(a) -> np.ndarray:
    """A numeric array as contiguous float32.

    Parameters
    ----------
    a : array_like
        Float, int, unsigned or bool values, any shape.

    Returns
    -------
    ndarray
        float32, same shape.

    Raises
    ------
    TypeError
        For other dtypes (strings, objects, complex).
    """
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"unsupported weight dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def dequantize(q: np.ndarray, scale, zero_point=None, *, axis: int = 0) -> np.ndarray:
    """``(q - zero_point) * scale``, per tensor (scalar scale) or per channel along ``axis``.

    Parameters
    ----------
    q : ndarray
        Quantised values, any shape.
    scale : float or array_like
        One scale, or one per index of ``q`` along ``axis``.
    zero_point : float or array_like, optional
        Likewise (default 0).
    axis : int
        The channel axis of per-channel parameters.

    Returns
    -------
    ndarray
        float32, the shape of ``q`` (computed in float64).

    Raises
    ------
    ValueError
        Per-channel parameters whose length is not that of ``axis``.
    """
    q = np.asarray(q).astype(np.float64)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    zp = np.zeros(1) if zero_point is None else np.asarray(zero_point, dtype=np.float64).reshape(-1)
    if scale.size == 1 and zp.size == 1:
        return ((q - zp[0]) * scale[0]).astype(np.float32)
    axis = axis % q.ndim
    n = q.shape[axis]
    if scale.size not in (1, n) or zp.size not in (1, n):
        raise ValueError(
            f"per-channel scale/zero point of size {scale.size}/{zp.size} do not match axis {axis} of length {n}"
        )
    shape = [1] * q.ndim
    shape[axis] = -1
    return ((q - zp.reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def natural_key(name: str):
    """Sort key that orders the digit runs of ``name`` numerically (``layer2`` before ``layer10``).

    Parameters
    ----------
    name : str
        A tensor name.

    Returns
    -------
    list of tuple
        The key.
    """
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]
