"""Conv weights from a flat state dict (PyTorch files, safetensors).

* checkpoints: the state dict is the object itself when it holds tensors, else the first of
  ``state_dict``, ``model_state_dict``, ``model``, ``net``, ``network``, ``params``, ``weights``,
  ``ema``, ``state`` that does (searched one level deep);
* ``module.`` prefixes (DataParallel) are dropped;
* weight norm: ``X.weight_g`` + ``X.weight_v`` (and ``X.parametrizations.weight.original0/1``)
  become ``X.weight = g * v / ||v||``, the norm over every dim except 0;
* a conv is a 4-D floating tensor whose name ends in ``weight`` or ``kernel`` (PyTorch layout
  ``(out, in/groups, kh, kw)``; a transposed conv cannot be told apart in a state dict);
* the group count is unknown (``groups = 0``; a 1-input-channel weight may be depthwise);
* ``bn_folded`` is False when BatchNorm statistics (``running_mean``) are present, else True.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import Conv, IngestError, ModelFile

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "params", "weights", "ema", "state")


def _has_tensors(d) -> bool:
    return isinstance(d, Mapping) and any(isinstance(v, np.ndarray) for v in d.values())


def find_state_dict(obj, path: str) -> Mapping:
    """The state dict inside an unpickled object.

    Parameters
    ----------
    obj : object
        A state dict, or a checkpoint dict holding one under a key of ``CHECKPOINT_KEYS``
        (searched two levels deep).
    path : str
        The file (for the error message).

    Returns
    -------
    Mapping
        ``name -> ndarray``.

    Raises
    ------
    IngestError
        No mapping holding arrays was found.
    """
    if _has_tensors(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_KEYS:
            v = obj.get(key)
            if _has_tensors(v):
                return v
            if isinstance(v, Mapping):
                for key2 in CHECKPOINT_KEYS:
                    if _has_tensors(v.get(key2)):
                        return v[key2]
    raise IngestError(f"{path}: no state dict of tensors found (top level: {type(obj).__name__})")


def _strip(name: str) -> str:
    while name.startswith("module."):
        name = name[len("module.") :]
    return name


def merge_weight_norm(sd: Mapping) -> dict[str, np.ndarray]:
    """Drop ``module.`` prefixes and merge weight-norm pairs.

    Parameters
    ----------
    sd : Mapping
        ``name -> ndarray`` (non-array values are ignored).

    Returns
    -------
    dict of str to ndarray
        In the order of ``sd``; ``X.weight_g`` + ``X.weight_v`` (or
        ``X.parametrizations.weight.original0/1``) become ``X.weight = g * v / ||v||`` (float32).
    """
    items = [(_strip(str(k)), v) for k, v in sd.items() if isinstance(v, np.ndarray)]
    names = dict(items)
    out: dict[str, np.ndarray] = {}
    for name, v in items:
        g = gname = vname = None
        for gs, vs, ws in (
            ("weight_g", "weight_v", "weight"),
            ("parametrizations.weight.original0", "parametrizations.weight.original1", "weight"),
        ):
            if name.endswith(gs) or name.endswith(vs):
                base = name[: -len(gs)] if name.endswith(gs) else name[: -len(vs)]
                gname, vname = base + gs, base + vs
                if gname in names and vname in names:
                    g = base + ws
                break
        if g is None:
            out[name] = v
            continue
        if g in out:
            continue
        gv = names[gname].astype(np.float64)
        vv = names[vname].astype(np.float64)
        norm = np.sqrt((vv.reshape(vv.shape[0], -1) ** 2).sum(axis=1))
        norm = norm.reshape((-1,) + (1,) * (vv.ndim - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            w = gv.reshape((-1,) + (1,) * (vv.ndim - 1)) * vv / norm
        out[g] = w.astype(np.float32)
    return out


def state_dict_model(sd_obj, path: str, *, fmt: str, producer: str = "") -> ModelFile:
    """The convolutions of a state dict (PyTorch file, safetensors).

    Parameters
    ----------
    sd_obj : object
        A state dict or checkpoint (see :func:`find_state_dict`).
    path : str
        The file.
    fmt : str
        The ``format`` to record (``pytorch``, ``safetensors``).
    producer : str
        The ``producer`` to record.

    Returns
    -------
    ModelFile
        4-D floating ``*weight`` / ``*kernel`` tensors as convs (float32, ``groups = 0``: unknown),
        in file order (``depth_source = "weight_order"``); ``bn_folded`` False when BatchNorm
        running statistics are present.
    """
    sd = merge_weight_norm(find_state_dict(sd_obj, path))
    convs = []
    for name, v in sd.items():
        last = name.rsplit(".", 1)[-1]
        if v.ndim == 4 and v.dtype.kind == "f" and (last.endswith("weight") or last.endswith("kernel")):
            convs.append(
                Conv(
                    name=name,
                    weight=np.ascontiguousarray(v, dtype=np.float32),
                    groups=0,
                    in_channels=int(v.shape[1]),
                    op="state_dict",
                )
            )
    for i, c in enumerate(convs):
        c.depth = float(i)
    bn = any(k.endswith("running_mean") for k in sd)
    return ModelFile(
        path=path, format=fmt, convs=convs, depth_source="weight_order", bn_folded=not bn, producer=producer
    )
