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


K = {
    "conv_a": _w(3, 3, 2, 4, seed=1),  # Conv2D (kh, kw, in, out)
    "dw": _w(3, 3, 2, 2, seed=2),  # DepthwiseConv2D (kh, kw, in, mult)
    "sep_dw": _w(3, 3, 4, 1, seed=3),
    "sep_pw": _w(1, 1, 4, 4, seed=4),
    "conv_out": _w(1, 1, 4, 3, seed=5),
}


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
    weights = {
        "input_1": {},
        "conv_a": {"kernel:0": K["conv_a"], "bias:0": np.zeros(4, np.float32)},
        "bn": {"gamma:0": np.ones(4, np.float32), "moving_mean:0": np.zeros(4, np.float32)},
        "sep": {"depthwise_kernel:0": K["sep_dw"], "pointwise_kernel:0": K["sep_pw"]},
        "dw": {"depthwise_kernel:0": K["dw"]},
        "add": {},
        "conv_out": {"kernel:0": K["conv_out"]},
    }
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
        for name, vs in {
            "conv2d": [K["conv_a"], np.zeros(4, np.float32)],
            "depthwise_conv2d": [K["dw"]],
            "separable_conv2d": [K["sep_dw"], K["sep_pw"], np.zeros(4, np.float32)],
            "conv2d_1": [K["conv_out"]],
            "conv2d_transpose": [_w(3, 3, 4, 4)],
            "dense": [_w(4, 2)],
        }.items():
            g = lay.create_group(name).create_group("vars")
            for i, v in enumerate(vs):
                g.create_dataset(str(i), data=v)
        f.create_group("vars")
    m = read_model_file(p)
    assert m.depth_source == "weight_order"
    assert [c.name for c in m.convs] == [
        "conv2d",
        "conv2d_1",
        "depthwise_conv2d",
        "separable_conv2d/depthwise",
        "separable_conv2d/pointwise",
    ]
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
    cfg = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in"}},
                {"class_name": "Conv2D", "config": {"name": "c1"}},
                {"class_name": "ReLU", "config": {"name": "r"}},
                {"class_name": "Conv2D", "config": {"name": "c2"}},
            ],
        },
    }
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


# ---- Keras 1 (2016-2017): <layer>/<layer>_W (+ _b), Theano or TensorFlow kernel order ---------------


def _write_k1_layers(root, layers, suffix=""):
    """Keras 1 ``save_weights_to_hdf5_group``: layer_names, one group per layer, ``<layer>_<w>`` datasets."""
    root.attrs["layer_names"] = [n.encode() for n in layers]
    for lname, ws in layers.items():
        g = root.create_group(lname)
        g.attrs["weight_names"] = [f"{lname}_{k}{suffix}".encode() for k in ws]
        for k, v in ws.items():
            g.create_dataset(f"{lname}_{k}{suffix}", data=v)


def _k1_layer(cls, name, **cfg):
    return {"class_name": cls, "config": {"name": name, **cfg}}


def test_keras1_full_model_theano_sequential(tmp_path):
    """Keras 1.2 model.save(), Theano dim ordering: kernels (out, in, kh, kw) kept as stored."""
    w1, w2, w3 = _w(8, 3, 3, 3, seed=40), _w(16, 8, 3, 3, seed=41), _w(4, 16, 1, 1, seed=42)
    layers = {
        "convolution2d_1": {"W": w1, "b": np.zeros(8, np.float32)},
        "activation_1": {},
        "batchnormalization_1": {
            "gamma": np.ones(8, np.float32),
            "beta": np.zeros(8, np.float32),
            "running_mean": np.zeros(8, np.float32),
            "running_std": np.ones(8, np.float32),
        },
        "convolution2d_2": {"W": w2, "b": np.zeros(16, np.float32)},
        "convolution1d_1": {"W": _w(3, 1, 16, 4, seed=43)},  # Keras 1 Conv1D kernels are 4-D: not read
        "convolution2d_3": {"W": w3},
    }
    cfg = {
        "class_name": "Sequential",
        "config": [
            _k1_layer("Convolution2D", "convolution2d_1", nb_filter=8, nb_row=3, nb_col=3, dim_ordering="th"),
            _k1_layer("Activation", "activation_1", activation="relu"),
            _k1_layer("BatchNormalization", "batchnormalization_1", axis=1),
            _k1_layer("Convolution2D", "convolution2d_2", nb_filter=16, nb_row=3, nb_col=3, dim_ordering="th"),
            _k1_layer("Convolution1D", "convolution1d_1"),
            _k1_layer("Convolution2D", "convolution2d_3", nb_filter=4, nb_row=1, nb_col=1, dim_ordering="th"),
        ],
    }
    p = str(tmp_path / "weights.best.hdf5")
    with h5py.File(p, "w") as f:
        f.attrs["keras_version"] = b"1.2.2"
        f.attrs["model_config"] = json.dumps(cfg).encode()
        _write_k1_layers(f.create_group("model_weights"), layers)
    m = read_model_file(p)
    assert m.extra["keras_layout"] == "keras1" and m.depth_source == "graph" and m.bn_folded is False
    assert m.producer == "keras 1.2.2"
    assert [c.name for c in m.convs] == ["convolution2d_1", "convolution2d_2", "convolution2d_3"]
    assert [c.depth for c in m.convs] == [1, 4, 6]
    w, meta = read_model_layers(p)
    np.testing.assert_array_equal(w[0], w1.reshape(-1, 9))
    np.testing.assert_array_equal(w[1], w2.reshape(-1, 9))
    assert list(meta["in_channels"]) == [3, 8] and list(meta["out_channels"]) == [8, 16]
    assert list(meta["conv_depth_norm"]) == [0.0, 0.5]


def test_keras1_full_model_tensorflow_functional(tmp_path):
    """Keras 1 functional Model with TF dim ordering (kh, kw, in, out) and ``:0`` weight names."""
    a, b = _w(3, 3, 3, 6, seed=44), _w(3, 3, 6, 2, seed=45)
    cfg = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}, "inbound_nodes": []},
                {
                    "class_name": "Convolution2D",
                    "name": "conv_a",
                    "config": {"name": "conv_a", "dim_ordering": "tf"},
                    "inbound_nodes": [[["input_1", 0, 0]]],
                },
                {
                    "class_name": "AtrousConvolution2D",
                    "name": "conv_b",
                    "config": {"name": "conv_b", "dim_ordering": "tf"},
                    "inbound_nodes": [[["conv_a", 0, 0]]],
                },
            ],
        },
    }
    p = str(tmp_path / "m.h5")
    with h5py.File(p, "w") as f:
        f.attrs["keras_version"] = b"1.1.0"
        f.attrs["model_config"] = json.dumps(cfg).encode()
        _write_k1_layers(
            f.create_group("model_weights"),
            {"input_1": {}, "conv_a": {"W": a, "b": np.zeros(6)}, "conv_b": {"W": b}},
            suffix=":0",
        )
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["conv_a", "conv_b"] and list(meta["op"]) == [
        "Convolution2D",
        "AtrousConvolution2D",
    ]
    # (kh, kw, in, out) -> (out, in, kh, kw): kernel [o, i] is a[:, :, i, o]
    want = np.stack([a[:, :, i, o].ravel() for o in range(6) for i in range(3)])
    np.testing.assert_array_equal(w[0], want)
    np.testing.assert_array_equal(w[1], np.stack([b[:, :, i, o].ravel() for o in range(2) for i in range(6)]))


@pytest.mark.parametrize("order", ["th", "tf"])
def test_keras1_save_weights_top_level_shape_rule(tmp_path, order):
    """save_weights: only layer_names at the top level (no keras_version, no config): the order of each
    kernel comes from its shape; depth follows layer_names (not the HDF5 group order)."""
    ks = {
        "zeta_conv": _w(32, 3, 3, 3, seed=46),
        "alpha_conv": _w(16, 32, 3, 3, seed=47),
        "mid_conv": _w(2, 16, 5, 5, seed=48),
    }  # stored (out, in, kh, kw)
    stored = ks if order == "th" else {k: np.transpose(v, (2, 3, 1, 0)) for k, v in ks.items()}
    p = str(tmp_path / "w.h5")
    with h5py.File(p, "w") as f:
        _write_k1_layers(
            f,
            {
                "zeta_conv": {"W": stored["zeta_conv"], "b": np.zeros(32, np.float32)},
                "dropout_1": {},
                "alpha_conv": {"W": stored["alpha_conv"]},
                "mid_conv": {"W": stored["mid_conv"]},
                "dense_1": {"W": _w(16, 10), "b": _w(10)},
            },
        )
        assert list(f.attrs) == ["layer_names"]
    m = read_model_file(p)
    assert m.depth_source == "weight_order" and m.extra["keras_layout"] == "keras1" and m.producer == ""
    assert [c.name for c in m.convs] == ["zeta_conv", "alpha_conv", "mid_conv"]
    for c in m.convs:
        np.testing.assert_array_equal(c.weight, ks[c.name])
    _, meta = read_model_layers(p)
    assert list(meta["conv_depth"]) == [0, 1] and list(meta["conv_depth_norm"]) == [0.0, 0.5]


@pytest.mark.parametrize("backend,order", [("theano", "th"), ("tensorflow", "tf"), (None, "th")])
def test_keras1_ambiguous_shape_uses_backend(tmp_path, backend, order):
    """A (3, 3, 3, 3) kernel fits both orders: the backend attribute decides, else Theano order."""
    k = _w(3, 3, 3, 3, seed=49)
    p = str(tmp_path / "amb.h5")
    with h5py.File(p, "w") as f:
        if backend:
            f.attrs["backend"] = backend.encode()
        _write_k1_layers(f, {"convolution2d_1": {"W": k}})
    w, _ = read_model_layers(p)
    want = k if order == "th" else np.transpose(k, (3, 2, 0, 1))
    np.testing.assert_array_equal(w[0], want.reshape(-1, 9))


def test_keras1_config_dim_ordering_beats_shape(tmp_path):
    """image_dim_ordering in the config decides even where the shape rule would say otherwise."""
    k = _w(3, 3, 8, 4, seed=50)  # stored TF order; shape rule alone would also say tf
    k_th = _w(4, 4, 3, 3, seed=51)  # square in both pairs: the shape cannot tell; config says tf
    cfg = {
        "class_name": "Sequential",
        "image_dim_ordering": "tf",
        "config": [_k1_layer("Convolution2D", "c1"), _k1_layer("Convolution2D", "c2")],
    }
    p = str(tmp_path / "c.h5")
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["backend"] = b"theano"
        _write_k1_layers(f.create_group("model_weights"), {"c1": {"W": k}, "c2": {"W": k_th}})
    w, _ = read_model_layers(p)
    np.testing.assert_array_equal(w[0], np.transpose(k, (3, 2, 0, 1)).reshape(-1, 9))
    # (4, 4, 3, 3) read as (kh, kw, in, out) has 4x4 kernels: not a 3x3 layer
    m = read_model_file(p)
    assert [c.kernel_size for c in m.convs] == [(3, 3), (4, 4)]


def test_keras1_nested_container(tmp_path):
    """A Keras 1 Sequential used as a layer: its weights sit in one group named after the container,
    ``<inner layer>_W``; each inner layer is its own conv (weights must not overwrite each other)."""
    a, b = _w(6, 3, 3, 3, seed=52), _w(2, 6, 3, 3, seed=53)
    p = str(tmp_path / "nested.h5")
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"input_1", b"sequential_1"]
        f.create_group("input_1").attrs["weight_names"] = []
        g = f.create_group("sequential_1")
        ws = {
            "convolution2d_1_W": a,
            "convolution2d_1_b": np.zeros(6, np.float32),
            "batchnormalization_1_running_mean": np.zeros(6, np.float32),
            "convolution2d_2_W": b,
        }
        g.attrs["weight_names"] = [k.encode() for k in ws]
        for k, v in ws.items():
            g.create_dataset(k, data=v)
    m = read_model_file(p)
    assert [c.name for c in m.convs] == ["sequential_1/convolution2d_1", "sequential_1/convolution2d_2"]
    assert m.bn_folded is False and m.depth_source == "weight_order"
    np.testing.assert_array_equal(m.convs[0].weight, a)
    np.testing.assert_array_equal(m.convs[1].weight, b)


@pytest.mark.parametrize("how", ["external_link", "external_storage", "dangling_soft_link"])
def test_keras_file_reaching_outside_is_refused(tmp_path, how):
    """A Keras HDF5 file whose weight is an external link, external raw storage or a dangling soft
    link is refused with one line; the other file is never opened."""
    from filterdb.ingest import IngestError

    p = str(tmp_path / "model.hdf5")
    write_keras2(p)
    other = tmp_path / "secret.h5"
    with h5py.File(other, "w") as g:
        g["k"] = K["conv_a"]
    raw = tmp_path / "secret.raw"
    raw.write_bytes(K["conv_a"].astype("<f4").tobytes())
    name = "model_weights/conv_a/conv_a_1/kernel:0"
    with h5py.File(p, "a") as f:
        del f[name]
        if how == "external_link":
            f[name] = h5py.ExternalLink(str(other), "/k")
        elif how == "external_storage":
            f.create_dataset(name, shape=K["conv_a"].shape, dtype="<f4", external=[(str(raw), 0, raw.stat().st_size)])
        else:
            f[name] = h5py.SoftLink("/nowhere")
    with pytest.raises(IngestError) as exc:
        read_model_file(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg
    if how == "dangling_soft_link":
        assert msg.endswith("is a soft link to '/nowhere', which is not an object of this file")
    else:
        assert msg.endswith("; refusing to read other files through it")
