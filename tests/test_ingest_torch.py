"""PyTorch files without torch: zip and legacy layouts, checkpoints, `module.` prefixes, weight norm,
and pickles that try to run code (must not run, must be reported as unsafe)."""

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from torch_writer import Global, Obj, QTensor, Reduce, Tensor, TensorView, module, write_torch_legacy, write_torch_zip

from filterdb.ingest import UnsafeFileError, read_model_file, read_model_layers

WRITERS = {"zip": write_torch_zip, "legacy": write_torch_legacy}


def _w(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _state_dict():
    return OrderedDict(
        [
            ("module.conv1.weight_g", np.abs(_w(4, 1, 1, 1, seed=1)) + 0.5),
            ("module.conv1.weight_v", _w(4, 2, 3, 3, seed=2)),
            ("module.conv1.bias", _w(4, seed=3)),
            ("module.bn1.weight", _w(4, seed=4)),
            ("module.bn1.running_mean", _w(4, seed=5)),
            ("module.bn1.num_batches_tracked", np.array(7, np.int64)),
            ("module.proj.weight", _w(6, 4, 1, 1, seed=6)),
            ("module.conv2.weight", _w(5, 6, 3, 3, seed=7, dtype=np.float16)),
            ("module.fc.weight", _w(10, 5, seed=8)),
        ]
    )


def _weight_norm(g, v):
    n = np.sqrt((v.astype(np.float64).reshape(v.shape[0], -1) ** 2).sum(1)).reshape(-1, 1, 1, 1)
    return g.astype(np.float64) * v / n


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_checkpoint_weight_norm_prefix(tmp_path, layout):
    sd = _state_dict()
    p = str(tmp_path / "ckpt.pt")
    ckpt = {"epoch": 12, "lr": 0.001, "arch": "toy", "state_dict": sd}
    (write_torch_zip if layout == "zip" else write_torch_legacy)(p, ckpt)
    m = read_model_file(p)
    assert m.format == "pytorch" and m.depth_source == "weight_order"
    assert m.extra["container"] == ("torch-zip" if layout == "zip" else "torch-legacy")
    assert [c.name for c in m.convs] == ["conv1.weight", "proj.weight", "conv2.weight"]
    assert m.bn_folded is False  # BatchNorm running stats are in the file
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["conv1.weight", "conv2.weight"]
    assert list(meta["conv_depth"]) == [0, 2] and list(meta["conv_depth_norm"]) == [0.0, 1.0]
    eff = _weight_norm(sd["module.conv1.weight_g"], sd["module.conv1.weight_v"])
    np.testing.assert_allclose(w[0], eff.reshape(-1, 9), rtol=1e-5)
    np.testing.assert_array_equal(w[1], sd["module.conv2.weight"].astype(np.float32).reshape(-1, 9))
    assert w[0].dtype == np.float32 and w[1].shape == (30, 9)
    assert list(meta["out_channels"]) == [4, 5] and list(meta["in_channels"]) == [2, 6]
    assert list(meta["groups"]) == [0, 0]  # unknown in a state dict
    assert meta["(1, 1) filters"].iloc[0] == 24 and meta["(3, 3) filters"].iloc[0] == 8 + 30


def test_model_key_and_parametrizations(tmp_path):
    g, v = np.abs(_w(3, 1, 1, 1, seed=9)) + 0.1, _w(3, 3, 3, 3, seed=10)
    sd = OrderedDict([("enc.parametrizations.weight.original0", g), ("enc.parametrizations.weight.original1", v)])
    p = str(tmp_path / "m.pth")
    write_torch_zip(p, {"model": sd, "optimizer": {"step": 3}}, prefix="m")
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["enc.weight"]
    np.testing.assert_allclose(w[0], _weight_norm(g, v).reshape(-1, 9), rtol=1e-5)


def test_tensor_view_of_shared_storage(tmp_path):
    """A tensor with an offset and non-contiguous strides into its storage (written by hand)."""
    base = np.arange(5 + 2 * 3 * 3 * 2, dtype=np.float32)
    p = str(tmp_path / "view.pt")
    # x.weight = base[5:].reshape(2, 1, 3, 3, 2)[..., 0] : offset 5, strides (18, 18, 6, 2)
    write_torch_zip(p, {"x.weight": TensorView(base, 5, (2, 1, 3, 3), (18, 18, 6, 2))})
    w, _ = read_model_layers(p)
    np.testing.assert_array_equal(w[0], base[5:].reshape(2, 1, 3, 3, 2)[..., 0].reshape(-1, 9))
    bad = str(tmp_path / "bad.pt")
    write_torch_zip(bad, {"x.weight": TensorView(base, 30, (2, 1, 3, 3), (18, 18, 6, 2))})
    with pytest.raises(ValueError, match=r"bad\.pt: tensor view outside its storage"):
        read_model_file(bad)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_in_zip_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"conv.weight": Evil(marker)}, protocol=2)
    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    with pytest.raises(UnsafeFileError, match=r"evil\.pt: pickle refers to (posix|os|nt)\.system"):
        read_model_file(str(p))
    assert not marker.exists()


def test_malicious_raw_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    p.write_bytes(pickle.dumps(Evil(marker), protocol=4))
    with pytest.raises(UnsafeFileError, match=r"pickle refers to (posix|os|nt)\.system, which could run code"):
        read_model_file(str(p))
    assert not marker.exists()
    # a legacy-looking file whose object pickle is the payload
    q = tmp_path / "evil_legacy.pt"
    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    buf.write(pickle.dumps(Evil(marker), protocol=2))
    q.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeFileError):
        read_model_file(str(q))
    assert not marker.exists()


def test_no_state_dict(tmp_path):
    p = str(tmp_path / "empty.pt")
    write_torch_zip(p, {"epoch": 3})
    with pytest.raises(ValueError, match="empty.pt: no state dict of tensors found"):
        read_model_file(p)


# ---- old PyTorch files: every rebuild function, storage type and container -----------------------

REBUILDS = [
    ("v1", None),
    ("v2", None),
    ("v3", None),
    ("v2", "parameter"),
    ("v2", "parameter_with_state"),
    ("v1", "legacy_parameter"),
    ("v2", "from_type_v2"),
    ("v3", "from_type_v2"),
]


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize("rebuild,param", REBUILDS)
def test_rebuild_functions(tmp_path, layout, rebuild, param):
    a, b = _w(4, 3, 3, 3, seed=11), _w(2, 4, 3, 3, seed=12)
    p = str(tmp_path / "old.pth")
    WRITERS[layout](
        p,
        OrderedDict(
            [
                ("features.0.weight", Tensor(a, rebuild, param)),
                ("features.0.bias", Tensor(_w(4, seed=13), rebuild, param)),
                ("features.2.weight", Tensor(b, rebuild, param, storage_module="torch")),
            ]
        ),
    )
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["features.0.weight", "features.2.weight"]
    np.testing.assert_array_equal(w[0], a.reshape(-1, 9))
    np.testing.assert_array_equal(w[1], b.reshape(-1, 9))


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_storage_dtypes_and_cuda_storages(tmp_path, layout):
    """Half, Double, BFloat16 (bits), cuda storages; the published dtype is float32."""
    f64, f16 = _w(2, 2, 3, 3, seed=14).astype(np.float64), _w(3, 2, 3, 3, seed=15).astype(np.float16)
    exact = (np.arange(-36, 36, dtype=np.float32) / 8).reshape(4, 2, 3, 3)  # exactly representable in bf16
    bits = (exact.view(np.uint32) >> 16).astype(np.uint16)
    p = str(tmp_path / "dt.pt")
    WRITERS[layout](
        p,
        OrderedDict(
            [
                ("a.weight", f64),
                ("b.weight", Tensor(f16, storage_module="torch.cuda")),
                ("c.weight", Tensor(bits, dtype_name="bfloat16")),
                ("d.weight", Tensor(bits, rebuild="v3", dtype_name="bfloat16")),
            ]
        ),
    )
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["a.weight", "b.weight", "c.weight", "d.weight"]
    np.testing.assert_array_equal(w[0], f64.astype(np.float32).reshape(-1, 9))
    np.testing.assert_array_equal(w[1], f16.astype(np.float32).reshape(-1, 9))
    np.testing.assert_array_equal(w[2], exact.reshape(-1, 9))
    np.testing.assert_array_equal(w[3], exact.reshape(-1, 9))
    assert all(x.dtype == np.float32 for x in w)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_quantised_tensors_are_dequantised(tmp_path, layout):
    rng = np.random.default_rng(16)
    q1 = rng.integers(-128, 128, (4, 2, 3, 3)).astype(np.int8)
    q2 = rng.integers(0, 256, (3, 4, 3, 3)).astype(np.uint8)
    scales, zps = np.array([0.5, 0.25, 0.125]), np.array([128, 120, 3])
    q3 = rng.integers(0, 256, (2, 3, 3, 3)).astype(np.uint8)
    fscale, fzp = np.array([0.1, 0.2]), np.array([-1.5, 2.0])
    p = str(tmp_path / "q.pt")
    WRITERS[layout](
        p,
        OrderedDict(
            [
                ("conv1.weight", QTensor(q1, 0.02, 3)),
                ("conv1.scale", np.array(1.0)),
                ("conv2.weight", QTensor(q2, scales, zps, axis=0)),
                ("conv3.weight", QTensor(q3, fscale, fzp, axis=0, float_qparams=True)),
            ]
        ),
    )
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["conv1.weight", "conv2.weight", "conv3.weight"]
    want1 = (q1.astype(np.float64) - 3) * 0.02
    want2 = np.stack([(q2[o].astype(np.float64) - zps[o]) * scales[o] for o in range(3)])
    want3 = np.stack([(q3[o].astype(np.float64) - fzp[o]) * fscale[o] for o in range(2)])
    np.testing.assert_allclose(w[0], want1.reshape(-1, 9), rtol=1e-6)
    np.testing.assert_allclose(w[1], want2.reshape(-1, 9), rtol=1e-6)
    np.testing.assert_allclose(w[2], want3.reshape(-1, 9), rtol=1e-6)


def test_legacy_storage_view(tmp_path):
    """torch <= 0.3 storage views: ('storage', type, root key, location, root size, (view key, offset, size))."""
    root = np.arange(40, dtype=np.float32)
    pkl = (
        b"\x80\x02}(X\x08\x00\x00\x00c.weightctorch._utils\n_rebuild_tensor\n("
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ\x28\x00\x00\x00"
        b"(X\x03\x00\x00\x00v17J\x04\x00\x00\x00J\x12\x00\x00\x00ttQ"
        b"J\x00\x00\x00\x00(J\x02\x00\x00\x00J\x01\x00\x00\x00J\x03\x00\x00\x00J\x03\x00\x00\x00t"
        b"(J\x09\x00\x00\x00J\x09\x00\x00\x00J\x03\x00\x00\x00J\x01\x00\x00\x00ttRu."
    )
    head = b"".join(pickle.dumps(o, protocol=2) for o in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    p = tmp_path / "view.pt"
    p.write_bytes(head + pkl + pickle.dumps(["0"], protocol=2) + np.int64(40).tobytes() + root.tobytes())
    w, _ = read_model_layers(str(p))
    np.testing.assert_array_equal(w[0], root[4:22].reshape(-1, 9))


# ---- whole-model pickles (torch.save(model)) --------------------------------------------------------


def _conv(w, bias=True, cls="Conv2d", **kw):
    bias_t = Tensor(_w(w.shape[0], seed=99), param="parameter") if bias else None
    params = [("weight", Tensor(w, param="parameter")), ("bias", bias_t)]
    return module(
        "torch.nn.modules.conv",
        cls,
        params,
        extra={"in_channels": w.shape[1], "kernel_size": (3, 3), "padding_mode": "zeros", **kw},
    )


def _vdsr(ws, module_pid=False):
    """VDSR-like: Net(input conv, residual_layer = Sequential(Conv_ReLU_Block(conv, relu) ...), output conv)."""
    relu = module("torch.nn.modules.activation", "ReLU", extra={"inplace": True})
    blocks = [
        (
            str(i),
            module(
                "vdsr",
                "Conv_ReLU_Block",
                children=[("conv", _conv(w, bias=False)), ("relu", relu)],
                module_pid=module_pid,
            ),
        )
        for i, w in enumerate(ws[1:-1])
    ]
    bn = module(
        "torch.nn.modules.batchnorm",
        "BatchNorm2d",
        [("weight", Tensor(np.ones(4, np.float32), param="parameter"))],
        [
            ("running_mean", np.zeros(4, np.float32)),
            ("num_batches_tracked", np.array(3, np.int64)),
            ("cached_weight", np.zeros((4, 4, 3, 3), np.float32)),
        ],
        extra={"_non_persistent_buffers_set": Reduce("__builtin__", "set", (["cached_weight"],))},
    )
    return module(
        "vdsr",
        "Net",
        children=[
            ("input", _conv(ws[0], bias=False)),
            ("bn", bn),
            ("residual_layer", module("torch.nn.modules.container", "Sequential", children=blocks)),
            ("output", _conv(ws[-1], bias=False)),
        ],
        extra={
            "act": Global("torch.nn.functional", "relu"),
            "device": Reduce("torch", "device", ("cpu",)),
            "args": Obj(
                "argparse",
                "Namespace",
                {
                    "lr": 0.1,
                    "arch": "vdsr",
                    "save_dir": Reduce("pathlib", "PosixPath", ("runs", "exp1")),
                    "norm": Reduce("functools", "partial", (Global("torch.nn", "BatchNorm2d"),)),
                },
            ),
        },
        module_pid=module_pid,
    )


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize("wrap", ["model", "dataparallel", "checkpoint"])
def test_whole_model_pickle(tmp_path, layout, wrap):
    ws = [_w(4, 1, 3, 3, seed=20), _w(4, 4, 3, 3, seed=21), _w(4, 4, 3, 3, seed=22), _w(1, 4, 3, 3, seed=23)]
    net = _vdsr(ws, module_pid=layout == "legacy")
    obj = {"model": net, "epoch": 50, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    if wrap == "dataparallel":
        obj = module(
            "torch.nn.parallel.data_parallel", "DataParallel", children=[("module", net)], extra={"device_ids": [0]}
        )
    elif wrap == "model":
        obj = net
    p = str(tmp_path / "model_epoch_50.pth")
    WRITERS[layout](p, obj)
    m = read_model_file(p)
    names = [c.name for c in m.convs]
    # module order; the non-persistent buffer is not in the state dict, so not read
    assert names == ["input.weight", "residual_layer.0.conv.weight", "residual_layer.1.conv.weight", "output.weight"]
    assert m.bn_folded is False
    w, meta = read_model_layers(p)
    for got, want in zip(w, ws):
        np.testing.assert_array_equal(got, want.reshape(-1, 9))
    assert list(meta["conv_depth"]) == [0, 1, 2, 3]


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize(
    "glob",
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("subprocess", "Popen"),
        ("builtins", "getattr"),
        ("torch", "load"),
        ("torch.hub", "load"),
        ("numpy.testing._private.utils", "runstring"),
    ],
)
def test_whole_model_with_malicious_global_is_refused(tmp_path, layout, glob):
    marker = tmp_path / "pwned"
    net = _vdsr([_w(4, 1, 3, 3), _w(1, 4, 3, 3)], module_pid=layout == "legacy")
    net.state["_forward_hooks"] = OrderedDict([(0, Reduce(*glob, (f"touch {marker}",)))])
    p = str(tmp_path / "evil_model.pth")
    WRITERS[layout](p, net)
    shown = {"__builtin__": "builtins"}.get(glob[0], glob[0])
    with pytest.raises(
        UnsafeFileError, match=rf"evil_model\.pth: pickle refers to {shown}\.{glob[1]}, which could run code"
    ):
        read_model_file(p)
    assert not marker.exists()


def test_unknown_callables_are_inert_placeholders(tmp_path):
    """A user function REDUCE'd in the pickle is recorded, never called (its module is never imported)."""
    marker = tmp_path / "ran"
    net = _vdsr([_w(2, 1, 3, 3, seed=30), _w(1, 2, 3, 3, seed=31)])
    net.state["hook"] = Reduce("filterdb_test_no_such_module", "run", (str(marker),))
    p = str(tmp_path / "m.pt")
    write_torch_zip(p, net)
    w, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["input.weight", "output.weight"]
    np.testing.assert_array_equal(w[1], _w(1, 2, 3, 3, seed=31).reshape(-1, 9))
    assert not marker.exists()
    import sys

    assert "filterdb_test_no_such_module" not in sys.modules


def test_module_without_parameters(tmp_path):
    p = tmp_path / "module.pt"
    with zipfile.ZipFile(p, "w") as z:
        # GLOBAL torch.nn.modules.conv Conv2d + NEWOBJ, no state: read, but holds no tensors
        z.writestr("archive/data.pkl", b"\x80\x02ctorch.nn.modules.conv\nConv2d\n)\x81.")
    with pytest.raises(ValueError, match=r"module\.pt: no state dict of tensors found"):
        read_model_file(str(p))


def test_checkpoint_with_numpy_scalars(tmp_path):
    """2017-2019 checkpoints often hold numpy scalars (best_prec1): read without numpy's unpickling."""
    p = tmp_path / "ckpt.pth.tar"
    best = pickle.dumps(np.float64(76.13), protocol=2)[2:-1]  # numpy.core.multiarray.scalar(dtype, bytes)
    e = io.BytesIO()
    write_torch_zip(e, {"best_prec1": 0, "state_dict": OrderedDict([("conv.weight", _w(2, 2, 3, 3, seed=40))])})
    with zipfile.ZipFile(io.BytesIO(e.getvalue())) as z:
        pkl = z.read("archive/data.pkl")
    pkl = pkl.replace(b"X\n\x00\x00\x00best_prec1J\x00\x00\x00\x00", b"X\n\x00\x00\x00best_prec1" + best)
    with zipfile.ZipFile(io.BytesIO(e.getvalue())) as zin, zipfile.ZipFile(p, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, pkl if n == "archive/data.pkl" else zin.read(n))
    from filterdb.ingest.torch_reader import read_torch_zip

    obj = read_torch_zip(str(p))
    assert obj["best_prec1"] == pytest.approx(76.13)
    np.testing.assert_array_equal(obj["state_dict"]["conv.weight"], _w(2, 2, 3, 3, seed=40))


def test_real_torch_files(tmp_path):
    """Files written by torch itself (only when torch is installed)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3, bias=False))
    want = [net[0].weight.detach().numpy().copy(), net[3].weight.detach().numpy().copy()]
    cases = {
        "sd_zip.pt": (net.state_dict(), True),
        "sd_legacy.pt": (net.state_dict(), False),
        "model_zip.pt": (net, True),
        "model_legacy.pt": (net, False),
        "half.pt": ({k: v.half() for k, v in net.state_dict().items()}, True),
        "bf16.pt": ({k: v.bfloat16() for k, v in net.state_dict().items()}, True),
    }
    for fn, (obj, zipped) in cases.items():
        torch.save(obj, tmp_path / fn, _use_new_zipfile_serialization=zipped)
        w, meta = read_model_layers(str(tmp_path / fn))
        assert list(meta["layer_name"]) == ["0.weight", "3.weight"], fn
        tol = {"half.pt": 1e-3, "bf16.pt": 1e-2}.get(fn, 0)
        for got, ref in zip(w, want):
            np.testing.assert_allclose(got, ref.reshape(-1, 9), atol=tol, rtol=tol)
    q = torch.quantize_per_channel(
        net[0].weight.detach(), torch.tensor([0.01, 0.02, 0.03, 0.04]), torch.tensor([0, 1, 2, 3]), 0, torch.qint8
    )
    torch.save({"c.weight": q}, tmp_path / "q.pt")
    w, _ = read_model_layers(str(tmp_path / "q.pt"))
    np.testing.assert_allclose(w[0], q.dequantize().numpy().reshape(-1, 9), rtol=1e-6)


def test_torchscript_archive(tmp_path):
    """torch.jit.save: data.pkl holds __torch__.* objects whose tensors and submodules are attributes."""
    w1, w2, w3 = _w(4, 3, 3, 3, seed=60), _w(4, 4, 3, 3, seed=61), _w(2, 4, 1, 1, seed=62)

    def conv(w):
        return Obj(
            "__torch__.torch.nn.modules.conv",
            "Conv2d",
            OrderedDict([("training", False), ("weight", w), ("bias", _w(w.shape[0], seed=63))]),
        )

    body = Obj(
        "__torch__.torch.nn.modules.container",
        "Sequential",
        OrderedDict(
            [
                ("training", False),
                ("0", conv(w2)),
                ("1", Obj("__torch__.torch.nn.modules.activation", "ReLU", {"training": False})),
            ]
        ),
    )
    net = Obj(
        "__torch__.model",
        "Net",
        OrderedDict([("training", False), ("head", conv(w1)), ("body", body), ("tail", conv(w3)), ("scale", 2)]),
    )
    p = tmp_path / "scripted.pt"
    write_torch_zip(p, net, prefix="scripted")
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("scripted/code/__torch__/model.py", "class Net(Module):\n  pass\n")
        z.writestr("scripted/constants.pkl", b"\x80\x02).")
    m = read_model_file(str(p))
    assert m.extra["container"] == "torchscript-zip"
    assert [c.name for c in m.convs] == ["head.weight", "body.0.weight", "tail.weight"]
    w, meta = read_model_layers(str(p))
    np.testing.assert_array_equal(w[0], w1.reshape(-1, 9))
    np.testing.assert_array_equal(w[1], w2.reshape(-1, 9))
    assert list(meta["conv_depth"]) == [0, 1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_of_numpy_arrays(tmp_path, protocol):
    """Weights converted from Caffe / Theano (2016-2018) as a pickled dict of numpy arrays; numpy is
    not asked to unpickle anything (arrays are built from their raw bytes)."""
    fortran = np.asfortranarray(_w(2, 4, 3, 3, seed=72)).astype(np.float64)
    sd = {
        "conv1.weight": _w(4, 3, 3, 3, seed=70),
        "conv1.bias": _w(4, seed=71),
        "conv2.weight": fortran,
        "mean": np.array([1.0, 2.0, 3.0]),
        "epoch": np.int64(7),
    }
    p = tmp_path / f"w{protocol}.pkl"
    p.write_bytes(pickle.dumps(sd, protocol=protocol))
    m = read_model_file(str(p))
    assert m.extra["container"] == "pickle" and [c.name for c in m.convs] == ["conv1.weight", "conv2.weight"]
    w, _ = read_model_layers(str(p))
    np.testing.assert_array_equal(w[0], sd["conv1.weight"].reshape(-1, 9))
    np.testing.assert_array_equal(w[1], fortran.astype(np.float32).reshape(-1, 9))
    q = tmp_path / "objects.pkl"
    q.write_bytes(pickle.dumps({"conv.weight": np.array(["a", 1], dtype=object)}, protocol=protocol))
    with pytest.raises(ValueError, match=r"objects\.pkl: numpy dtype 'O8' is not a plain numeric dtype"):
        read_model_file(str(q))
