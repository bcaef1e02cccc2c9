"""The pass kernels, compiled ahead of time when they can be.

Each shard job runs one of the kernels of :mod:`filterdb.kernels`. With numba's JIT, a fresh
process pays ~0.7 s to import numba and ~0.7 s to load even a cached kernel (LLVM start-up) before
its first filter: ~1.4 s per shard job, paid three times in a row by the chain of passes. ``bash
install.sh`` therefore compiles the same kernel functions once, ahead of time (``numba.pycc``), into
an extension module of this package (``python -m filterdb.compiled build``). A job then loads them
in ~0.1 s without importing numba.

The extension is used only when its stamp (beside it, ``_passkernels.json``) matches: the SHA-256
of ``kernels.py`` and ``exactsum.py`` it was built from, the numba version and this machine's CPU
(name and features: the code is compiled for the CPU that built it, so a cluster node with another
CPU falls back to the JIT). Otherwise, or with ``FILTERDB_KERNELS=jit``, the numba JIT kernels are
used; both compile the same functions with the same IEEE operations (no fastmath), so results are
identical (tested). :func:`load` says which is in use and why (the pass logs print it).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import exactsum

NAME = "_passkernels"
HERE = Path(__file__).resolve().parent
STAMP = HERE / f"{NAME}.json"

_F8 = "float64"


def _arr(dtype: str, ndim: int) -> str:
    return f"{dtype}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


_I1 = _arr("int64", 1)
#: The stored dtypes the pass kernels read (float16 as its uint16 bit patterns: numba has no
#: float16), each compiled as its own variant: ``sums_block_float64`` etc.
ROW_TYPES = {"float32": "float32", "float64": "float64", "float16": "uint16"}
_PASS_SIGNATURES = {
    "sums_block": (
        "void({x}, {i1}, {i1}, {i1}, boolean, int64, {i1}, {f2}, {f3}, {i1}, "
        "{i1}, boolean, float64, {f1}, {i1}, {i1}, {f3}, {f3}, {f1}, {i2})"
    ),
    "range_block": "void({x}, {i1}, {i1}, {i1}, boolean, int64, {f1}, {f2}, {f2}, {f2})",
    "hist_block": (
        "void({x}, {i1}, {i1}, {i1}, boolean, int64, {f1}, {f2}, "
        "{f1}, {u3}, {i1}, {f1}, {u3}, {i2}, "
        "float64, float64, int64, {u3}, {f1}, {u3}, {i2})"
    ),
}
_TYPES = {
    "i1": _I1,
    "i2": _arr("int64", 2),
    "f1": _arr(_F8, 1),
    "f2": _arr(_F8, 2),
    "f3": _arr(_F8, 3),
    "u3": _arr("uint32", 3),
}
#: Exported kernels and their one signature each (the types the passes call them with).
SIGNATURES = {
    f"{name}_{stored}": sig.format(x=_arr(t, 2), **_TYPES)
    for name, sig in _PASS_SIGNATURES.items()
    for stored, t in ROW_TYPES.items()
}
SIGNATURES["limbs"] = f"void({_arr(_F8, 2)}, {_arr('int64', 2)}, int64, int64, int64)"
SIGNATURES["ortho_block"] = f"void({_arr('float32', 3)}, {_arr(_F8, 2)}, int64, {_arr(_F8, 1)})"
SIGNATURES["half_to_float32"] = f"void({_arr('uint16', 2)}, {_arr('float32', 2)})"
#: The kernels :func:`load` gives, each with the name of its JIT function in :mod:`filterdb.kernels`.
KERNELS = {**{n: n for n in _PASS_SIGNATURES}, "limbs": "_limbs", "ortho_block": "ortho_block"}
KERNELS["half_to_float32"] = "half_to_float32"
#: Each exported symbol of the build and the JIT function it is compiled from.
_JIT_NAMES = {f"{name}_{stored}": name for name in _PASS_SIGNATURES for stored in ROW_TYPES}
_JIT_NAMES.update({k: v for k, v in KERNELS.items() if k not in _PASS_SIGNATURES})


def _by_row_type(variants: dict):
    """One pass kernel that calls the variant compiled for its rows' dtype."""
    table = {np.dtype(t): f for t, f in variants.items()}

    def call(x, *args):
        try:
            f = table[x.dtype]
        except KeyError:
            raise TypeError(f"no compiled pass kernel for rows of dtype {x.dtype}") from None
        return f(x, *args)

    return call


def stamp() -> dict:
    """What an ahead-of-time build must match: sources, numba version, this CPU."""
    from importlib.metadata import version

    import llvmlite.binding as llvm  # ~0.1 s, no numba import

    h = hashlib.sha256()
    for name in ("kernels.py", "exactsum.py", "histogram.py", "scaling.py"):
        h.update((HERE / name).read_bytes())
    return {
        "source_sha256": h.hexdigest(),
        "numba": version("numba"),
        "cpu": llvm.get_host_cpu_name(),
        "cpu_features": llvm.get_host_cpu_features().flatten(),
    }


def build(out_dir: str | os.PathLike | None = None) -> Path:
    """Compile the pass kernels ahead of time for this machine's CPU.

    Parameters
    ----------
    out_dir : path, optional
        Where to write the extension and its stamp (default: this package's directory).

    Returns
    -------
    Path of the extension module.
    """
    import warnings

    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC

    from . import kernels

    out = Path(out_dir) if out_dir is not None else HERE
    cc = CC(NAME)
    cc.output_dir = str(out)
    cc.target_cpu = "host"
    cc.verbose = False
    for name, sig in SIGNATURES.items():
        cc.export(name, sig)(getattr(kernels, _JIT_NAMES[name]).py_func)
    # as the JIT kernels (nogil=True, error_model="numpy"): the GIL is released while a kernel runs
    # (the passes' threads run kernels in parallel), IEEE division without a ZeroDivisionError
    # check (the loops vectorise); pycc has no options for either
    import numba.pycc.compiler as pycc_compiler

    base = pycc_compiler.Flags

    class _Flags(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.error_model = "numpy"
            self.release_gil = True

    pycc_compiler.Flags = _Flags
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
    finally:
        pycc_compiler.Flags = base
    (out / f"{NAME}.json").write_text(json.dumps(stamp(), indent=1) + "\n")
    return next(out.glob(f"{NAME}.*.so"), None) or next(out.glob(f"{NAME}*"))


def namespace(mod) -> SimpleNamespace:
    """The kernels of a built extension module under the JIT kernels' names: each pass kernel
    calls the variant compiled for its rows' dtype."""
    kern = {k: getattr(mod, k) for k in KERNELS if k not in _PASS_SIGNATURES}
    for name in _PASS_SIGNATURES:
        kern[name] = _by_row_type({t: getattr(mod, f"{name}_{s}") for s, t in ROW_TYPES.items()})
    return SimpleNamespace(**kern, mode="aot", reason="ahead of time")


@cache
def load() -> SimpleNamespace:
    """The pass kernels to use: ``sums_block``, ``range_block``, ``hist_block``, ``limbs``, and
    ``mode`` (``"aot"`` or ``"jit"``) with ``reason``.

    Raises
    ------
    ImportError
        Without a usable ahead-of-time build and without numba (one line naming the fix).
    """
    why = "FILTERDB_KERNELS=jit" if os.environ.get("FILTERDB_KERNELS", "").lower() == "jit" else ""
    if not why:
        try:
            built = json.loads(STAMP.read_text())
        except (OSError, ValueError):
            built = None
            why = "not built (python -m filterdb.compiled build)"
        if built is not None:
            now = stamp()
            diff = [k for k in now if built.get(k) != now[k]]
            if diff:
                why = f"built for another {' / '.join(diff)}"
    if not why:
        try:
            import importlib

            mod = importlib.import_module(f"{__package__}.{NAME}")
            return namespace(mod)
        except ImportError as e:  # pragma: no cover - a broken build
            why = f"cannot load the build: {e}"
    from . import kernels

    if not kernels.HAVE_NUMBA:
        raise ImportError(f"the pass kernels need numba, which is not installed (pip install 'numba>=0.59'); {why}")
    return SimpleNamespace(**{k: getattr(kernels, v) for k, v in KERNELS.items()}, mode="jit", reason=why)


def exact_limbs(values: np.ndarray) -> np.ndarray:
    """:func:`filterdb.exactsum.limbs` compiled (~20 ns per value; equal results, tested): the
    sums pass stores the limbs of its layers' sums so that any job can form the global PCA.

    Parameters
    ----------
    values : (n, ...) float64 array_like of finite values

    Returns
    -------
    (..., exactsum.N_LIMBS) int64 ndarray
    """
    flat, shape = exactsum.columns(values)
    out = np.zeros((flat.shape[1], exactsum.N_LIMBS), np.int64)
    load().limbs(flat, out, exactsum.LIMB_BITS, exactsum.SHIFT, exactsum._PIECES)
    return out.reshape(shape + (exactsum.N_LIMBS,))


def main(argv: list[str] | None = None) -> int:
    """``python -m filterdb.compiled build [DIR]`` | ``status``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["build"]:
        path = build(args[1] if len(args) > 1 else None)
        print(f"built {path}")
        return 0
    if args[:1] == ["status"]:
        k = load()
        print(f"{k.mode}: {k.reason}")
        return 0
    print("usage: python -m filterdb.compiled build [DIR] | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
