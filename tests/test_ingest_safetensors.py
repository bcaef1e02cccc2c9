"""safetensors reader (natural name order, dtypes incl. bf16)."""

import json
import struct

import numpy as np
import pytest

from filterdb.ingest import read_model_file, read_model_layers


def write_safetensors(path, tensors, metadata=None):
    """Minimal writer (the format: u64 header length, JSON header, raw little-endian data)."""
    header, blobs, off = {}, [], 0
    for name, (dtype, arr_bytes, shape) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(arr_bytes)]}
        blobs.append(arr_bytes)
        off += len(arr_bytes)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def _f32(a):
    return ("F32", a.astype("<f4").tobytes(), a.shape)


def test_safetensors_order_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    w0, w2, w10 = (rng.standard_normal(s).astype(np.float32) for s in [(4, 2, 3, 3), (4, 4, 1, 1), (2, 4, 3, 3)])
    bf = w10.view(np.uint32) >> 16  # bf16 = upper half of float32
    p = str(tmp_path / "m.safetensors")
    write_safetensors(
        p,
        {
            "features.10.weight": ("BF16", bf.astype("<u2").tobytes(), w10.shape),
            "features.0.weight": _f32(w0),
            "features.2.weight": _f32(w2),
            "features.1.running_mean": _f32(np.zeros(4, np.float32)),
        },
        metadata={"format": "pt"},
    )
    m = read_model_file(p)
    assert m.format == "safetensors" and m.producer == "format=pt" and m.bn_folded is False
    assert [c.name for c in m.convs] == ["features.0.weight", "features.2.weight", "features.10.weight"]
    w, meta = read_model_layers(p)
    np.testing.assert_array_equal(w[0], w0.reshape(-1, 9))
    np.testing.assert_array_equal(w[1], (bf.astype(np.uint32) << 16).view(np.float32).reshape(-1, 9))
    assert list(meta["conv_depth"]) == [0, 2] and list(meta["conv_depth_norm"]) == [0.0, 1.0]


def test_safetensors_library_file(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    w = np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 3, 3)
    p = str(tmp_path / "lib.safetensors")
    st.save_file({"conv.weight": w, "conv.bias": np.zeros(2, np.float32)}, p)
    ws, meta = read_model_layers(p)
    np.testing.assert_array_equal(ws[0], w.reshape(-1, 9))
    assert meta["total_filters"].iloc[0] == 6
