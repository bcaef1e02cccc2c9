"""PyTorch files without torch: zip and legacy layouts, checkpoints, `module.` prefixes, weight norm,
and pickles that try to run code (must not run, must be reported as unsafe)."""

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from filterdb.ingest import UnsafeFileError, read_model_file, read_model_layers
from torch_writer import TensorView, write_torch_legacy, write_torch_zip


def _w(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _state_dict():
    return OrderedDict([
        ("module.conv1.weight_g", np.abs(_w(4, 1, 1, 1, seed=1)) + 0.5),
        ("module.conv1.weight_v", _w(4, 2, 3, 3, seed=2)),
        ("module.conv1.bias", _w(4, seed=3)),
        ("module.bn1.weight", _w(4, seed=4)),
        ("module.bn1.running_mean", _w(4, seed=5)),
        ("module.bn1.num_batches_tracked", np.array(7, np.int64)),
        ("module.proj.weight", _w(6, 4, 1, 1, seed=6)),
        ("module.conv2.weight", _w(5, 6, 3, 3, seed=7, dtype=np.float16)),
        ("module.fc.weight", _w(10, 5, seed=8)),
    ])


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
    with pytest.raises(UnsafeFileError, match="not a tensor-rebuild function"):
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


def test_whole_module_pickle_is_refused(tmp_path):
    p = tmp_path / "module.pt"
    with zipfile.ZipFile(p, "w") as z:
        # GLOBAL torch.nn.modules.conv Conv2d: a pickled nn.Module, not a state dict
        z.writestr("archive/data.pkl", b"\x80\x02ctorch.nn.modules.conv\nConv2d\n)\x81.")
    with pytest.raises(UnsafeFileError, match="torch.nn.modules.conv.Conv2d"):
        read_model_file(str(p))


def test_no_state_dict(tmp_path):
    p = str(tmp_path / "empty.pt")
    write_torch_zip(p, {"epoch": 3})
    with pytest.raises(ValueError, match="empty.pt: no state dict of tensors found"):
        read_model_file(p)
