"""Keras models: HDF5 files (Keras 2 ``model_weights/<layer>/<layer>/kernel:0`` layout, full models
and ``save_weights`` files), Keras 3 weights (``layers/<layer>/vars/<i>``, ``.weights.h5``) and
``.keras`` zips (``config.json`` + ``model.weights.h5``).

Kernels become ``(out, in/groups, kh, kw)``:

* ``Conv2D`` kernel ``(kh, kw, in/groups, out)`` -> transpose (3, 2, 0, 1);
* ``DepthwiseConv2D`` kernel ``(kh, kw, in, mult)`` -> ``(in * mult, 1, kh, kw)``, output channel
  ``c * mult + m``, ``groups = in``;
* ``SeparableConv2D``: its depthwise kernel as above plus the pointwise ``(1, 1, in * mult, out)``
  as a 1x1 conv one graph level deeper (as an ONNX export of the layer would have it);
* ``Conv2DTranspose`` / ``Conv1D`` / ``Conv3D`` are not read.

Depth: with a model config (Keras 2 ``model_config`` attribute, Keras 3 ``config.json``) the layer
graph is rebuilt from ``inbound_nodes`` (Functional) or the layer order (Sequential) and graph
depths are used; otherwise (weights only, nested models) the convs' order (``weight_order``).
Keras 3 weights without a config: the layer class is guessed from the layer name.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np

from .base import Conv, IngestError, ModelFile
from .depth import graph_depths

MODEL_CLASSES = {"Functional", "Model", "Sequential"}


def _natural(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


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


def _convs_of_layer(lname: str, cls: str | None, weights: dict[str, np.ndarray], lcfg: dict) -> list[Conv]:
    """Conv(s) of one Keras layer; ``weights`` maps short names (kernel, depthwise_kernel, ...)."""
    cls = cls or ""
    if "Transpose" in cls or "Conv1D" in cls or "Conv3D" in cls:
        return []
    convs = []
    dw = weights.get("depthwise_kernel")
    if dw is not None and dw.ndim == 4:
        kh, kw, cin, mult = dw.shape
        w = np.transpose(dw, (2, 3, 0, 1)).reshape(cin * mult, 1, kh, kw)
        name = lname + ("/depthwise" if "pointwise_kernel" in weights else "")
        convs.append(Conv(name=name, weight=np.ascontiguousarray(w, np.float32), groups=int(cin),
                          in_channels=int(cin), op="DepthwiseConv2D"))
        pw = weights.get("pointwise_kernel")
        if pw is not None and pw.ndim == 4:
            w = np.transpose(pw, (3, 2, 0, 1))
            convs.append(Conv(name=lname + "/pointwise", weight=np.ascontiguousarray(w, np.float32), groups=1,
                              in_channels=int(w.shape[1]), op="SeparableConv2D.pointwise"))
        return convs
    k = weights.get("kernel")
    if k is not None and k.ndim == 4:
        groups = int(lcfg.get("groups", 1) or 1)
        w = np.transpose(k, (3, 2, 0, 1))
        convs.append(Conv(name=lname, weight=np.ascontiguousarray(w, np.float32), groups=groups,
                          in_channels=int(w.shape[1]) * groups, op=cls or "Conv2D"))
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
        if config is None and "model_config" in f.attrs:
            config = json.loads(_s(f.attrs["model_config"]))
        if not producer and "keras_version" in f.attrs:
            producer = f"keras {_s(f.attrs['keras_version'])}"
            if "backend" in f.attrs:
                producer += f" ({_s(f.attrs['backend'])})"
        layer_cfg = {_layer_name(lay): lay for lay in _layers_of(config)} if config else {}
        records: list[tuple[str, str | None, dict]] = []  # (layer name, class, short-name weights)
        nested = False
        if "model_weights" in f or "layer_names" in f.attrs:
            layout = "keras2"
            root = f["model_weights"] if "model_weights" in f else f
            for lname in (_s(x) for x in root.attrs["layer_names"]):
                g = root[lname]
                groups: dict[str, dict] = {}
                for wn in (_s(x) for x in g.attrs.get("weight_names", [])):
                    parent, _, short = wn.rpartition("/")
                    short = short.split(":")[0]
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
                for lname in sorted(g.keys(), key=_natural):
                    lg = g[lname]
                    if not isinstance(lg, h5py.Group):
                        continue
                    full = f"{prefix}{lname}"
                    if "layers" in lg:
                        nested = True
                        walk(lg["layers"], full + "/")
                    vars_ = []
                    if "vars" in lg:
                        vars_ = [np.asarray(lg["vars"][k][()]) for k in sorted(lg["vars"].keys(), key=_natural)]
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
        bn = any(("moving_mean" in ws) or (cls == "BatchNormalization") for _, cls, ws in records) or any(
            lay.get("class_name") == "BatchNormalization" for lay in layer_cfg.values())
        convs_by_layer: list[tuple[str, list[Conv]]] = []
        for lname, cls, ws in records:
            lc = layer_cfg.get(lname, {}).get("config", {})
            cs = _convs_of_layer(lname, cls, ws, lc)
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
    return ModelFile(path=path, format="keras", convs=convs, depth_source=depth_source, bn_folded=not bn,
                     producer=producer, extra=extra)
