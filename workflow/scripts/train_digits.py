"""Rule train_digits: a small CNN trained with numpy only on scikit-learn's ``load_digits()``
(1,797 handwritten 8x8 digits, UCI "Optical Recognition of Handwritten Digits", CC BY 4.0).

Net: conv3x3(1->8, pad 1) - ReLU - conv3x3(8->16, pad 1) - ReLU - global average pool - dense(16->10),
Adam, softmax cross-entropy, fixed seed; 80/20 split (stratified by a seeded permutation).
Written as ONNX (two 3x3 Conv nodes, so the graph depth is known) plus a one-row models sheet.
Runs in well under a minute on one core. Also runnable by hand:
``python workflow/scripts/train_digits.py OUT.onnx SHEET.tsv [EPOCHS] [SEED]``.
"""

import sys

if "snakemake" in globals():
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import os  # noqa: E402

import numpy as np  # noqa: E402


def _patches(x):
    """(N, C, H, W) -> (N*H*W, C*9) 3x3 patches with zero padding 1 (row (n, y, x), column
    (c, i, j) = x[n, c, y + i - 1, x + j - 1]; nine block copies from a channels-last copy)."""
    n, c, h, w = x.shape
    xp = np.zeros((n, h + 2, w + 2, c))
    xp[:, 1:-1, 1:-1, :] = x.transpose(0, 2, 3, 1)
    out = np.empty((n, h, w, c, 3, 3))
    for i in range(3):
        for j in range(3):
            out[:, :, :, :, i, j] = xp[:, i : i + h, j : j + w, :]
    return out.reshape(n * h * w, c * 9)


def _conv(x, w, b):
    n, _, h, wd = x.shape
    p = _patches(x)
    y = p @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), p


def _conv_back(dy, p, w, xshape, need_dx=True):
    """Gradients ``(dx, dw, db)`` of the 3x3 convolution; ``dx`` is None without ``need_dx`` (the
    first layer's input needs none). ``dx`` is summed channels-last (the same nine additions per
    element, in the same order) and returned as an (N, C, H, W) view."""
    n, c, h, wd = xshape
    dyf = dy.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
    dw = (dyf.T @ p).reshape(w.shape)
    db = dyf.sum(0)
    if not need_dx:
        return None, dw, db
    dp = (dyf @ w.reshape(w.shape[0], -1)).reshape(n, h, wd, c, 3, 3)
    dxp = np.zeros((n, h + 2, wd + 2, c))
    for i in range(3):
        for j in range(3):
            dxp[:, i : i + h, j : j + wd, :] += dp[:, :, :, :, i, j]
    return dxp[:, 1:-1, 1:-1, :].transpose(0, 3, 1, 2), dw, db


def load_digits():
    """``(images (1797, 8, 8), target (1797,))`` of scikit-learn's ``load_digits()``.

    Read straight from the CSV that scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``,
    parsed as ``load_digits`` does), without importing scikit-learn (~2 s of SciPy and
    scikit-learn imports); falls back to ``sklearn.datasets.load_digits`` if the file moved."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits as sk_load_digits

        d = sk_load_digits()
        return d.images, d.target
    data = np.loadtxt(csv, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def train(epochs=40, seed=0, batch=64, lr=0.01, log=print):
    images, y = load_digits()
    x = (images / 16.0)[:, None].astype(np.float64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    params = {
        "w1": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)),
        "b1": np.zeros(8),
        "w2": rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)),
        "b2": np.zeros(16),
        "w3": rng.normal(0, np.sqrt(1 / 16), (10, 16)),
        "b3": np.zeros(10),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    t = 0

    def forward(xb):
        h1, p1 = _conv(xb, params["w1"], params["b1"])
        a1 = np.maximum(h1, 0)
        h2, p2 = _conv(a1, params["w2"], params["b2"])
        a2 = np.maximum(h2, 0)
        g = a2.mean(axis=(2, 3))
        return g @ params["w3"].T + params["b3"], (xb, h1, p1, a1, h2, p2, a2, g)

    for ep in range(epochs):
        order = rng.permutation(tr)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            logits, (xb, h1, p1, a1, h2, p2, a2, g) = forward(x[idx])
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            dl = prob
            dl[np.arange(len(idx)), y[idx]] -= 1
            dl /= len(idx)
            grads = {"w3": dl.T @ g, "b3": dl.sum(0)}
            dg = dl @ params["w3"]
            da2 = np.broadcast_to(dg[:, :, None, None] / (a2.shape[2] * a2.shape[3]), a2.shape)
            dh2 = da2 * (h2 > 0)
            da1, grads["w2"], grads["b2"] = _conv_back(dh2, p2, params["w2"], a1.shape)
            dh1 = da1 * (h1 > 0)
            _, grads["w1"], grads["b1"] = _conv_back(dh1, p1, params["w1"], xb.shape, need_dx=False)
            t += 1
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                params[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
        if ep % 10 == 9 or ep == epochs - 1:
            acc = (forward(x[te])[0].argmax(1) == y[te]).mean()
            log(f"epoch {ep + 1}: test accuracy {acc:.3f}")
    acc = float((forward(x[te])[0].argmax(1) == y[te]).mean())
    return params, acc


def write_onnx(params, path, meta):
    """Write the net as ONNX (opset 13, float32 weights, ``meta`` as metadata properties).

    Built from onnx's protobuf messages directly (:func:`filterdb.onnx_proto.pb2`), field by
    field as ``onnx.helper`` builds them (the same bytes: ``tests/test_sample.py`` rebuilds the file
    with ``onnx.helper`` and runs ``onnx.checker`` on it), without the onnx package's ~0.8 s start-up."""
    from filterdb.onnx_proto import pb2

    P = pb2()
    graph = P.GraphProto(name="digits_cnn")

    def node(op, inputs, outputs, name=None, **attrs):
        n = graph.node.add(op_type=op, input=inputs, output=outputs)
        if name:
            n.name = name
        for key, value in sorted(attrs.items()):
            if isinstance(value, list):
                n.attribute.add(name=key, ints=value, type=P.AttributeProto.INTS)
            else:
                n.attribute.add(name=key, i=value, type=P.AttributeProto.INT)

    def value_info(field, name, shape):
        v = field.add(name=name)
        v.type.tensor_type.elem_type = P.TensorProto.FLOAT
        dims = v.type.tensor_type.shape.dim
        for d in shape:
            if isinstance(d, str):
                dims.add(dim_param=d)
            else:
                dims.add(dim_value=d)

    node("Conv", ["x", "w1", "b1"], ["h1"], name="conv1", pads=[1, 1, 1, 1])
    node("Relu", ["h1"], ["a1"])
    node("Conv", ["a1", "w2", "b2"], ["h2"], name="conv2", pads=[1, 1, 1, 1])
    node("Relu", ["h2"], ["a2"])
    node("GlobalAveragePool", ["a2"], ["g"])
    node("Flatten", ["g"], ["gf"])
    node("Gemm", ["gf", "w3", "b3"], ["logits"], transB=1)
    value_info(graph.input, "x", ["N", 1, 8, 8])
    value_info(graph.output, "logits", ["N", 10])
    for k, v in params.items():
        a = np.asarray(v, "<f4")
        graph.initializer.add(dims=a.shape, data_type=P.TensorProto.FLOAT, name=k, raw_data=a.tobytes())
    model = P.ModelProto(ir_version=P.IR_VERSION, producer_name="filterdb train_digits.py (numpy)")
    model.graph.CopyFrom(graph)
    model.opset_import.add(domain="", version=13)
    for k, val in meta.items():
        model.metadata_props.add(key=k, value=str(val))
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())


SHEET_HEADER = [
    "model",
    "path",
    "Name",
    "Task",
    "Visual Category",
    "Training-Dataset",
    "Pretraining-Dataset",
    "licence",
    "test_accuracy",
    "seed",
    "epochs",
]


def run(out_onnx, out_sheet, epochs=40, seed=0, log=print):
    params, acc = train(epochs=epochs, seed=seed, log=log)
    os.makedirs(os.path.dirname(os.path.abspath(out_onnx)), exist_ok=True)
    write_onnx(params, out_onnx, {"test_accuracy": f"{acc:.4f}", "seed": seed, "epochs": epochs})
    rel = os.path.relpath(os.path.abspath(out_onnx), os.path.dirname(os.path.abspath(out_sheet)))
    row = [
        f"digits-cnn-seed{seed}",
        rel,
        "digits CNN (2x conv3x3)",
        "Classification",
        "handwritten digits",
        "sklearn digits (UCI optical recognition of handwritten digits)",
        "",
        "MIT (weights); data CC BY 4.0",
        f"{acc:.4f}",
        str(seed),
        str(epochs),
    ]
    with open(out_sheet, "w") as f:
        f.write("\t".join(SHEET_HEADER) + "\n" + "\t".join(row) + "\n")
    log(f"wrote {out_onnx} (test accuracy {acc:.3f}) and {out_sheet}")


if "snakemake" in globals():
    p = snakemake.params  # noqa: F821
    run(
        snakemake.output.model,
        snakemake.output.sheet,
        epochs=int(p.epochs),
        seed=int(p.seed),  # noqa: F821
        log=lambda msg: print(msg, file=sys.stderr),
    )
elif __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], epochs=int(a[2]) if len(a) > 2 else 40, seed=int(a[3]) if len(a) > 3 else 0)
