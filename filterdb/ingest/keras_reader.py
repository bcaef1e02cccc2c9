"""Keras models: HDF5 files (Keras 2 ``model_weights/<layer>/<layer>/kernel:0`` layout, full models
and ``save_weights`` files), Keras 1 HDF5 files (2016-2017: ``<layer>/<layer>_W`` + ``_b``, under
``model_weights/`` or at the top level of ``save_weights`` files that only have a ``layer_names``
attribute), Keras 3 weights (``layers/<layer>/vars/<i>``, ``.weights.h5``) and ``.keras`` zips
(``config.json`` + ``model.weights.h5``).

Kernels become ``(out, in/groups, kh, kw)``:

* ``Conv2D`` kernel ``(kh, kw, in/groups, out)`` -> transpose (3, 2, 0, 1);
* ``DepthwiseConv2D`` kernel ``(kh, kw, in, mult)`` -> ``(in * mult, 1, kh, kw)``, output channel
  ``c * mult + m``, ``groups = in``;
* ``SeparableConv2D``: its depthwise kernel as above plus the pointwise ``(1, 1, in * mult, out)``
  as a 1x1 conv one graph level deeper (as an ONNX export of the layer would have it);
* ``Conv2DTranspose`` / ``Conv1D`` / ``Conv3D`` are not read (Keras 1: ``Deconvolution2D``,
  ``Convolution1D`` / ``AtrousConvolution1D``, ``Convolution3D``; named so when there is no config);
* Keras 1 ``Convolution2D`` / ``AtrousConvolution2D`` kernels ``W`` are in Theano order
  ``(out, in, kh, kw)`` (kept) or TensorFlow order ``(kh, kw, in, out)`` (transposed). The order is
  the layer's ``dim_ordering`` in the model config, else the config's ``image_dim_ordering`` / the
  common ``dim_ordering`` of its layers, else the shape (the kernel dims are the pair of small
  (<= 15) dims; if both pairs qualify, the square pair), else the ``backend`` attribute (theano:
  Theano order), else Theano order (the Keras 1 default). Kernels are not flipped: a Theano-backend
  model (true convolution) keeps its kernels as stored.

Depth: with a model config (Keras 2 ``model_config`` attribute, Keras 3 ``config.json``) the layer
graph is rebuilt from ``inbound_nodes`` (Functional) or the layer order (Sequential) and graph
depths are used; otherwise (weights only, nested models) the convs' order (``weight_order``).
Keras 3 weights without a config: the layer class is guessed from the layer name.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from .base import Conv, IngestError, ModelFile, natural_key
from .depth import graph_depths

MODEL_CLASSES = {"Functional", "Model", "Sequential"}


def _s(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _layers_of(cfg) -> list[dict]:
    c = cfg.get("config", {}) if isinstance(cfg, dict) else {}
    if isinstance(c, list):  # very old Sequential
        return c
    return list(c.get("layers", []))


def _layer_name(layer: dict) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name"))


def _predecessors(inbound) -> list[str]:
    out: list[str] = []

    def walk(x):
        if isinstance(x, dict):
            kh = x.get("keras_history")
            if kh:
                out.append(str(kh[0]))
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                out.append(x[0])
                return
            for v in x:
                walk(v)

    walk(inbound)
    return out


KERAS1_SHORT = ("W", "b", "depthwise_kernel", "pointwise_kernel", "gamma", "beta", "running_mean", "running_std")
KERAS1_SKIP = ("Deconvolution", "Convolution1D", "Convolution3D", "AtrousConvolution1D")


def _keras1_short(short: str, bases) -> tuple[str, str] | None:
    """Keras 1 weight name ``<layer>_W`` -> ``("W", "<layer>")`` (None when it is not a Keras 1 name)."""
    for b in bases:
        if b and short.startswith(b + "_") and short[len(b) + 1 :] in KERAS1_SHORT:
            return short[len(b) + 1 :], b
    for t in ("depthwise_kernel", "pointwise_kernel", "running_mean", "running_std"):
        if short.endswith("_" + t):
            return t, short[: -len(t) - 1]
    tail = short.rsplit("_", 1)[-1]
    return (tail, short[: -len(tail) - 1]) if tail != short and tail in ("W", "b") else None


def keras1_order(shape, *, dim_ordering: str | None = None, backend: str | None = None) -> tuple[str, str]:
    """Axis order of a Keras 1 conv kernel ``W``.

    Parameters
    ----------
    shape : tuple of 4 int
        The stored kernel's shape.
    dim_ordering : {"th", "tf"}, optional
        From the layer or model config (decides when given).
    backend : str, optional
        The file's ``backend`` attribute (breaks a tie of the shape rule: theano -> "th").

    Returns
    -------
    (str, str)
        ``"th"`` (``(out, in, kh, kw)``) or ``"tf"`` (``(kh, kw, in, out)``), and what decided it
        (``"config"``, ``"shape"``, ``"backend"``, ``"default"``).
    """
    if dim_ordering in ("th", "tf"):
        return dim_ordering, "config"
    a, b, c, d = (int(x) for x in shape)
    th, tf = c <= 15 and d <= 15, a <= 15 and b <= 15
    if th != tf:
        return ("th" if th else "tf"), "shape"
    if th and (c == d) != (a == b):
        return ("th" if c == d else "tf"), "shape"
    if backend:
        return ("th" if backend.lower() == "theano" else "tf"), "backend"
    return "th", "default"


def _config_dim_ordering(config) -> str | None:
    """``image_dim_ordering`` of a Keras 1 model config, or the ``dim_ordering`` all its layers share."""
    if not isinstance(config, dict):
        return None
    c = config.get("config")
    for d in (config, c if isinstance(c, dict) else {}):
        if d.get("image_dim_ordering") in ("th", "tf"):
            return d["image_dim_ordering"]
    seen = {lay.get("config", {}).get("dim_ordering") for lay in _layers_of(config)} - {None, "default"}
    return seen.pop() if len(seen) == 1 and seen <= {"th", "tf"} else None


def _convs_of_layer(
    lname: str, cls: str | None, weights: dict[str, np.ndarray], lcfg: dict, hints: dict | None = None
) -> list[Conv]:
    """Conv(s) of one Keras layer.

    Parameters
    ----------
    lname : str
        Layer name.
    cls : str or None
        Layer class (from the config), None when unknown.
    weights : dict of str to ndarray
        The layer's weights by short name (``kernel``, ``depthwise_kernel``, ``pointwise_kernel``,
        Keras 1 ``W``, ...).
    lcfg : dict
        The layer's config (``groups``, Keras 1 ``dim_ordering``).
    hints : dict, optional
        Keras 1 axis-order hints: ``dim_ordering`` (model config), ``backend``.

    Returns
    -------
    list of Conv
        Weights as ``(out, in/groups, kh, kw)`` float32 (depth not set).
    """
    cls = cls or ""
    if "Transpose" in cls or "Conv1D" in cls or "Conv3D" in cls or any(k in cls for k in KERAS1_SKIP):
        return []
    convs = []
    w1 = weights.get("W")
    if w1 is not None and w1.ndim == 4 and "depthwise_kernel" not in weights:
        low = lname.lower()
        if not cls and any(k in low for k in ("deconv", "convolution1d", "conv1d", "convolution3d", "conv3d")):
            return []
        hints = hints or {}
        order, _ = keras1_order(
            w1.shape, dim_ordering=lcfg.get("dim_ordering") or hints.get("dim_ordering"), backend=hints.get("backend")
        )
        w = w1 if order == "th" else np.transpose(w1, (3, 2, 0, 1))
        return [
            Conv(
                name=lname,
                weight=np.ascontiguousarray(w, np.float32),
                groups=1,
                in_channels=int(w.shape[1]),
                op=cls or "Convolution2D",
            )
        ]
    dw = weights.get("depthwise_kernel")
    if dw is not None and dw.ndim == 4:
        kh, kw, cin, mult = dw.shape
        w = np.transpose(dw, (2, 3, 0, 1)).reshape(cin * mult, 1, kh, kw)
        name = lname + ("/depthwise" if "pointwise_kernel" in weights else "")
        convs.append(
            Conv(
                name=name,
                weight=np.ascontiguousarray(w, np.float32),
                groups=int(cin),
                in_channels=int(cin),
                op="DepthwiseConv2D",
                kind="depthwise",
            )
        )
        pw = weights.get("pointwise_kernel")
        if pw is not None and pw.ndim == 4:
            w = np.transpose(pw, (3, 2, 0, 1))
            convs.append(
                Conv(
                    name=lname + "/pointwise",
                    weight=np.ascontiguousarray(w, np.float32),
                    groups=1,
                    in_channels=int(w.shape[1]),
                    op="SeparableConv2D.pointwise",
                )
            )
        return convs
    k = weights.get("kernel")
    if k is not None and k.ndim == 4:
        groups = int(lcfg.get("groups", 1) or 1)
        w = np.transpose(k, (3, 2, 0, 1))
        convs.append(
            Conv(
                name=lname,
                weight=np.ascontiguousarray(w, np.float32),
                groups=groups,
                in_channels=int(w.shape[1]) * groups,
                op=cls or "Conv2D",
            )
        )
    return convs


def _keras3_short_names(lname: str, cls: str | None, vars_: list[np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
    """(layer class, short-name weights) of a Keras 3 layer (class guessed from the name if unknown)."""
    guess = cls or ""
    low = lname.lower()
    if not guess:
        if "transpose" in low:
            guess = "Conv2DTranspose"
        elif "separable" in low:
            guess = "SeparableConv2D"
        elif "depthwise" in low:
            guess = "DepthwiseConv2D"
        elif "conv" in low:
            guess = "Conv2D"
    if "Transpose" in guess or not vars_:
        return guess, {}
    if guess == "SeparableConv2D" and len(vars_) >= 2:
        return guess, {"depthwise_kernel": vars_[0], "pointwise_kernel": vars_[1]}
    if guess == "DepthwiseConv2D":
        return guess, {"depthwise_kernel": vars_[0]}
    if "Conv" in guess:
        return guess, {"kernel": vars_[0]}
    return guess, {}


def read_keras(path: str) -> ModelFile:
    """Read the convolutions of a Keras file (HDF5 of Keras 1 / 2 / 3, or a ``.keras`` zip).

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    ModelFile
        Its 4-D convs as ``(out, in/groups, kh, kw)`` float32, with graph depths when the file holds
        a model config (``depth_source="graph"``), else in layer order (``"weight_order"``);
        ``extra["keras_layout"]`` is ``keras1``, ``keras2`` or ``keras3``.

    Raises
    ------
    IngestError
        Not a Keras file, or an unreadable one.
    """
    try:
        return _read_keras(path)
    except IngestError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise IngestError(
            f"{path}: corrupt Keras file ({exc.__class__.__name__}: "
            f"{str(msg).splitlines()[0][:120] if str(msg) else ''})"
        ) from None


def _read_keras(path: str) -> ModelFile:
    import h5py

    config = None
    producer = ""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "model.weights.h5" not in names:
                raise IngestError(f"{path}: zip without model.weights.h5: not a .keras file")
            if "config.json" in names:
                config = json.loads(z.read("config.json"))
            if "metadata.json" in names:
                md = json.loads(z.read("metadata.json"))
                producer = f"keras {md.get('keras_version', '')}".strip()
            raw = z.read("model.weights.h5")
        f = h5py.File(io.BytesIO(raw), "r")
    else:
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise IngestError(f"{path}: cannot open as HDF5 ({exc})") from None
    with f:
        from ..h5safe import UnsafeFile, check_file

        try:  # nothing outside the model file is read through it
            check_file(f, path)
        except UnsafeFile as exc:
            raise IngestError(str(exc)) from None
        if config is None and "model_config" in f.attrs:
            config = json.loads(_s(f.attrs["model_config"]))
        if not producer and "keras_version" in f.attrs:
            producer = f"keras {_s(f.attrs['keras_version'])}"
            if "backend" in f.attrs:
                producer += f" ({_s(f.attrs['backend'])})"
        layer_cfg = {_layer_name(lay): lay for lay in _layers_of(config)} if config else {}
        records: list[tuple[str, str | None, dict]] = []  # (layer name, class, short-name weights)
        nested = False
        hints = {
            "dim_ordering": _config_dim_ordering(config),
            "backend": _s(f.attrs["backend"]) if "backend" in f.attrs else None,
        }
        if "model_weights" in f or "layer_names" in f.attrs:
            layout = "keras2"
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise IngestError(f"{path}: Keras HDF5 file without a layer_names attribute")
            for lname in (_s(x) for x in root.attrs["layer_names"]):
                if lname not in root:
                    raise IngestError(f"{path}: layer {lname} is listed in layer_names but has no weights group")
                g = root[lname]
                groups: dict[str, dict] = {}
                for wn in (_s(x) for x in g.attrs.get("weight_names", [])):
                    parent, _, short = wn.rpartition("/")
                    short = short.split(":")[0]
                    k1 = (
                        None
                        if short in ("kernel", "bias", "depthwise_kernel", "pointwise_kernel")
                        else _keras1_short(short, (parent.rsplit("/", 1)[-1], lname))
                    )
                    if k1 is not None:
                        (short, owner), layout = k1, "keras1"
                        if not parent and owner != lname:  # a nested Keras 1 container: one group per inner layer
                            parent = owner
                    groups.setdefault(parent, {})[short] = np.asarray(g[wn][()])
                if len(groups) > 1:
                    nested = True
                for parent, ws in groups.items():
                    lc = layer_cfg.get(lname, {})
                    cls = lc.get("class_name")
                    if len(groups) > 1:
                        cls = None  # a nested model: classify by weight names
                    records.append((lname if len(groups) == 1 else f"{lname}/{parent}", cls, ws))
        elif "layers" in f:
            layout = "keras3"

            def walk(g, prefix):
                nonlocal nested
                for lname in sorted(g.keys(), key=natural_key):
                    lg = g[lname]
                    if not isinstance(lg, h5py.Group):
                        continue
                    full = f"{prefix}{lname}"
                    if "layers" in lg:
                        nested = True
                        walk(lg["layers"], full + "/")
                    vars_ = []
                    if "vars" in lg:
                        vars_ = [np.asarray(lg["vars"][k][()]) for k in sorted(lg["vars"].keys(), key=natural_key)]
                    if vars_:
                        cls = layer_cfg.get(lname, {}).get("class_name") if not prefix else None
                        guess, ws = _keras3_short_names(lname, cls, vars_)
                        records.append((full, guess or None, ws))

            walk(f["layers"], "")
            if layer_cfg and not nested:
                order = {n: i for i, n in enumerate(layer_cfg)}
                records.sort(key=lambda r: order.get(r[0], len(order)))
        else:
            raise IngestError(f"{path}: HDF5 file is not a Keras model (no model_weights, layer_names or layers)")
        bn = any(
            ("moving_mean" in ws) or ("running_mean" in ws) or (cls == "BatchNormalization") for _, cls, ws in records
        ) or any(lay.get("class_name") == "BatchNormalization" for lay in layer_cfg.values())
        convs_by_layer: list[tuple[str, list[Conv]]] = []
        for lname, cls, ws in records:
            lc = layer_cfg.get(lname, {}).get("config", {})
            cs = _convs_of_layer(lname, cls, ws, lc, hints)
            if cs:
                convs_by_layer.append((lname, cs))

    depth_source = "weight_order"
    cls_name = config.get("class_name") if config else None
    if config and not nested and cls_name in MODEL_CLASSES and layer_cfg:
        lays = _layers_of(config)
        nodes, inputs = [], []
        seq = cls_name == "Sequential"
        prev = "__input__"
        if seq:
            inputs.append(prev)
        for lay in lays:
            name = _layer_name(lay)
            weight = 2 if lay.get("class_name") == "SeparableConv2D" else 1
            if seq:
                if lay.get("class_name") == "InputLayer":
                    continue
                nodes.append(([prev], [name], weight))
                prev = name
            elif lay.get("class_name") == "InputLayer" or not lay.get("inbound_nodes"):
                inputs.append(name)
                nodes.append(([], [name], 0))
            else:
                nodes.append((_predecessors(lay.get("inbound_nodes")), [name], weight))
        if nodes:
            d = graph_depths(nodes, inputs)
            depth_of = {n[1][0]: dd for n, dd in zip(nodes, d)}
            if all(depth_of.get(lname) is not None for lname, _ in convs_by_layer):
                depth_source = "graph"
                for lname, cs in convs_by_layer:
                    base = depth_of[lname]
                    for j, c in enumerate(cs):
                        # separable: depthwise one level before the pointwise part
                        c.depth = float(base - (len(cs) - 1 - j))
    convs = [c for _, cs in convs_by_layer for c in cs]
    if depth_source == "weight_order":
        for i, c in enumerate(convs):
            c.depth = float(i)
    extra = {"keras_layout": layout}
    return ModelFile(
        path=path,
        format="keras",
        convs=convs,
        depth_source=depth_source,
        bn_folded=not bn,
        producer=producer,
        extra=extra,
    )
