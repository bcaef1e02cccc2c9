"""Keras files written with h5py: Keras 2 full-model HDF5 (functional graph with a branch, depthwise
and separable convs, BatchNorm), Keras 3 ``.weights.h5`` layout, and a ``.keras`` zip."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from filterdb.ingest import read_model_file, read_model_layers


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _inb(*names):
    return [[[n, 0, 0, {}] for n in names]]


def _layer(cls, name, inbound, **cfg):
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}, "inbound_nodes": inbound}


K = {"conv_a": _w(3, 3, 2, 4, seed=1),  # Conv2D (kh, kw, in, out)
     "dw": _w(3, 3, 2, 2, seed=2),  # DepthwiseConv2D (kh, kw, in, mult)
     "sep_dw": _w(3, 3, 4, 1, seed=3), "sep_pw": _w(1, 1, 4, 4, seed=4),
     "conv_out": _w(1, 1, 4, 3, seed=5)}


def write_keras2(path):
    layers = [
        {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}, "inbound_nodes": []},
        _layer("Conv2D", "conv_a", _inb("input_1")),
        _layer("BatchNormalization", "bn", _inb("conv_a")),
        _layer("SeparableConv2D", "sep", _inb("bn")),
        _layer("DepthwiseConv2D", "dw", _inb("input_1")),
        _layer("Add", "add", _inb("sep", "dw")),
        _layer("Conv2D", "conv_out", _inb("add")),
    ]
    cfg = {"class_name": "Model", "config": {"name": "toy", "layers": layers}}
    weights = {"input_1": {}, "conv_a": {"kernel:0": K["conv_a"], "bias:0": np.zeros(4, np.float32)},
               "bn": {"gamma:0": np.ones(4, np.float32), "moving_mean:0": np.zeros(4, np.float32)},
               "sep": {"depthwise_kernel:0": K["sep_dw"], "pointwise_kernel:0": K["sep_pw"]},
               "dw": {"depthwise_kernel:0": K["dw"]}, "add": {},
               "conv_out": {"kernel:0": K["conv_out"]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["keras_version"] = b"2.0.5"
        f.attrs["backend"] = b"tensorflow"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in weights]
        for lname, ws in weights.items():
            g = mw.create_group(lname)
            g.attrs["weight_names"] = [f"{lname}_1/{k}".encode() for k in ws]
            for k, v in ws.items():
                g.create_dataset(f"{lname}_1/{k}", data=v)


def test_keras2_functional_graph(tmp_path):
    p = str(tmp_path / "model.hdf5")
    write_keras2(p)
    m = read_model_file(p)
    assert m.format == "keras" and m.depth_source == "graph" and m.bn_folded is False
    assert m.producer == "keras 2.0.5 (tensorflow)"
    names = [c.name for c in m.convs]
    assert names == ["conv_a", "sep/depthwise", "sep/pointwise", "dw", "conv_out"]
    # graph depths: conv_a 1, bn 2, sep 4 (depthwise part 3), dw 1, add 5, conv_out 6
    assert [c.depth for c in m.convs] == [1, 3, 4, 1, 6]
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["conv_a", "sep/depthwise", "dw"]
    assert list(meta["conv_depth"]) == [0, 1, 0]
    assert list(meta["conv_depth_norm"]) == pytest.approx([0.0, 1 / 3, 0.0])
    np.testing.assert_array_equal(w[0], np.transpose(K["conv_a"], (3, 2, 0, 1)).reshape(-1, 9))
    # depthwise (kh, kw, in, mult): output channel c * mult + m is kernel [:, :, c, m]
    want = np.stack([K["dw"][:, :, c, mm].ravel() for c in range(2) for mm in range(2)])
    np.testing.assert_array_equal(w[2], want)
    assert list(meta["groups"]) == [1, 4, 2] and list(meta["out_channels"]) == [4, 4, 4]
    assert meta["(1, 1) filters"].iloc[0] == 16 + 12


def test_keras3_weights_layout_without_config(tmp_path):
    p = str(tmp_path / "model.weights.h5")
    with h5py.File(p, "w") as f:
        lay = f.create_group("layers")
        for name, vs in {"conv2d": [K["conv_a"], np.zeros(4, np.float32)],
                         "depthwise_conv2d": [K["dw"]],
                         "separable_conv2d": [K["sep_dw"], K["sep_pw"], np.zeros(4, np.float32)],
                         "conv2d_1": [K["conv_out"]],
                         "conv2d_transpose": [_w(3, 3, 4, 4)],
                         "dense": [_w(4, 2)]}.items():
            g = lay.create_group(name).create_group("vars")
            for i, v in enumerate(vs):
                g.create_dataset(str(i), data=v)
        f.create_group("vars")
    m = read_model_file(p)
    assert m.depth_source == "weight_order"
    assert [c.name for c in m.convs] == ["conv2d", "conv2d_1", "depthwise_conv2d",
                                         "separable_conv2d/depthwise", "separable_conv2d/pointwise"]
    w, meta = read_model_layers(p)
    assert list(meta["conv_depth"]) == [0, 2, 3]
    assert list(meta["conv_depth_norm"]) == pytest.approx([0, 0.5, 0.75])
    np.testing.assert_array_equal(w[2], np.transpose(K["sep_dw"], (2, 3, 0, 1)).reshape(-1, 9))


def test_dot_keras_zip_sequential(tmp_path):
    h5 = tmp_path / "w.h5"
    with h5py.File(h5, "w") as f:
        lay = f.create_group("layers")
        lay.create_group("c1").create_group("vars").create_dataset("0", data=K["conv_a"])
        lay.create_group("c2").create_group("vars").create_dataset("0", data=_w(3, 3, 4, 2, seed=9))
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in"}},
        {"class_name": "Conv2D", "config": {"name": "c1"}},
        {"class_name": "ReLU", "config": {"name": "r"}},
        {"class_name": "Conv2D", "config": {"name": "c2"}}]}}
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", json.dumps(cfg))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.4.1"}))
        z.write(h5, "model.weights.h5")
    m = read_model_file(str(p))
    assert m.depth_source == "graph" and m.producer == "keras 3.4.1"
    assert [c.depth for c in m.convs] == [1, 3]
    _, meta = read_model_layers(str(p))
    assert list(meta["conv_depth_norm"]) == [0.0, 1.0]


def test_hdf5_that_is_not_keras(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(ValueError, match="x.h5: HDF5 file is not a Keras model"):
        read_model_file(str(p))
