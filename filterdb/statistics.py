"""The registry of per-layer statistics: what each streamed pass accumulates, how shard parts
combine, what it costs in memory, and which result file holds it.

Every statistic of the analysis is a union of per-layer quantities (docs/method.md §2): one
streamed pass over the filter rows fills, for the layers of one shard, the *accumulators* of the
statistics it feeds; at the end of the shard each statistic's ``finish`` turns its accumulators
into its *outputs* (the arrays of the shard's part). A gather combines the parts' outputs by each
output's rule, and the gathered arrays are the statistic's result file (``stats/{result}.npz``).

Nothing else lists the arrays: the passes allocate their accumulators from here (and cut them
into lanes), check their parts against it, the gathers look up each array's combine rule here,
the small exact totals the next passes need are chosen here, and the workflow's memory estimates
add up the bytes declared here.

Shapes are tuples of sizes and dimension names, resolved by :class:`Dims`:

``d``      values per filter (k²: :mod:`filterdb.shape`), also the PCA coefficients
``bins``   coarse histogram bins (config ``histogram.bins``)
``eps``    thresholds of the sparsity sweep (``quality.sensitivity.eps`` plus ``quality.eps``)
``fine``   bins of the fine per-cell histograms (``histogram.fine_bins``)
``pairs``  coefficient pairs of the 2-D histograms (``density.pairs``)
``dbins``  bins of a 2-D histogram per side (``density.bins``)
``limbs``  limbs of an exact sum (:data:`filterdb.exactsum.N_LIMBS`)

Combine rules of an output:

``layer``  per layer (first axis): each layer's entry comes from the one part covering it
``sum``    added over parts (exact: integers, or the limbs of exact sums)
``min`` / ``max``  element-wise minimum / maximum over parts
``same``   equal in every part (edges, pairs, threshold grids): checked, kept once
``cells``  fine per-cell histogram records, added by cell id into ``cell_hist.npy``

Adding a statistic: its math (tested against numpy), its hook in a pass (a compiled kernel's
arguments, or a Python ``block`` hook here for a statistic the kernels do not compute), and one
:func:`register` call. The pass, the part, the gather, the result file and the memory estimate
follow from the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import compiled, exactsum, quality

PASSES = ("sums", "range", "hist")
#: Each combine rule's prefix of an output's name in a shard part (parts keep the names they
#: always had: per-layer arrays bare, whole-shard arrays ``total__`` / ``min__`` / ``max__``,
#: cell records ``part__``); the gathered result files hold the bare names.
PART_PREFIX = {"layer": "", "sum": "total__", "same": "total__", "min": "min__", "max": "max__", "cells": "part__"}
COMBINES = tuple(PART_PREFIX)
#: When a statistic is computed (:meth:`Dims.enabled`): always, or with its config switch on.
CONDITIONS = (None, "quality", "fixed", "fine", "density")


@dataclass(frozen=True)
class Array:
    """One array of a statistic: an accumulator of a pass or an output of a part.

    Attributes
    ----------
    name : str
        Its name (an output: in the gathered result file; in a part with :data:`PART_PREFIX`).
    dtype : str
    shape : tuple of int or str
        Without the layer axis for per-layer arrays (accumulators, ``layer`` outputs) and the
        record axis of cell records (``cells``); names are resolved by :class:`Dims`.
    combine : str
        Outputs only (:data:`COMBINES`); accumulators are ``layer``.
    fill : float
        Initial value of an accumulator.
    optional : bool
        An output a part may lack (the fine cell records of a pass that wrote them to a file).
    """

    name: str
    dtype: str
    shape: tuple = ()
    combine: str = "layer"
    fill: float = 0
    optional: bool = False

    @property
    def per_layer(self) -> bool:
        return self.combine == "layer"

    @property
    def part_name(self) -> str:
        return PART_PREFIX[self.combine] + self.name


@dataclass(frozen=True)
class Statistic:
    """One per-layer statistic.

    Attributes
    ----------
    name : str
    pass_ : str
        The pass that feeds it (:data:`PASSES`).
    accumulators : tuple of Array
        Per-layer arrays the pass fills (its lanes write disjoint slices).
    outputs : tuple of Array
        The arrays of a part, in the order they are written.
    finish : callable
        ``finish(acc, ctx) -> dict`` of output arrays from the shard's accumulators ``acc``
        (every accumulator of the pass, by name) and the pass ``ctx`` (its plan, layers,
        settings); None: the outputs are the accumulators of the same names.
    when : str or None
        The condition it is computed under (:data:`CONDITIONS`).
    result : str
        The result file of its gathered outputs (``stats/{result}.npz``; the pass's name when
        not given). Cell records (``cells``) are gathered into ``stats/cell_hist.npy`` instead.
    block : callable or None
        A Python hook ``block(values, starts, ends, pos, acc)`` run on every read block after the
        pass's kernel, for a statistic the compiled kernels do not compute: ``values`` the block's
        rows as the kernels load them (float32, or float64 for float64 rows loaded as stored;
        unscaled; non-finite rows included), the block's
        layers at local positions ``pos`` spanning rows ``starts[i]:ends[i]``, ``acc`` the
        accumulators (sliced to the running lane).
    per_cell : tuple of Array
        Arrays held per open cell of the grids (the fine histograms' pool; memory estimates).
    doc : str
    """

    name: str
    pass_: str
    accumulators: tuple = ()
    outputs: tuple = ()
    finish: Callable | None = None
    when: str | None = None
    result: str = ""
    block: Callable | None = None
    per_cell: tuple = ()
    doc: str = ""

    def __post_init__(self):
        if self.pass_ not in PASSES:
            raise ValueError(f"statistic {self.name!r}: pass {self.pass_!r} is not one of {PASSES}")
        if self.when not in CONDITIONS:
            raise ValueError(f"statistic {self.name!r}: condition {self.when!r} is not one of {CONDITIONS}")
        for a in self.outputs:
            if a.combine not in COMBINES:
                raise ValueError(f"statistic {self.name!r}: {a.name} combines by {a.combine!r}, not one of {COMBINES}")
        if not self.result:
            object.__setattr__(self, "result", self.pass_)


@dataclass(frozen=True)
class Dims:
    """The sizes that resolve the registry's shapes, and which conditions hold.

    Attributes
    ----------
    d, bins, eps, fine, pairs, dbins : int
    quality, fixed : bool
        Quality metrics on (``quality.eps`` set); fixed-range histograms (``models.range``).
    """

    d: int
    bins: int = 0
    eps: int = 0
    fine: int = 0
    pairs: int = 0
    dbins: int = 0
    quality: bool = False
    fixed: bool = False
    limbs: int = field(default=exactsum.N_LIMBS)

    def enabled(self, when) -> bool:
        return {
            None: True,
            "quality": self.quality,
            "fixed": self.fixed,
            "fine": self.fine > 0,
            "density": self.pairs > 0,
        }[when]

    def shape(self, shape: tuple) -> tuple:
        """``shape`` with its names resolved (a name may end in ``+1``: edges of ``bins`` bins)."""
        return tuple(self._size(s) for s in shape)

    def _size(self, s) -> int:
        if not isinstance(s, str):
            return int(s)
        if s.endswith("+1"):
            return int(getattr(self, s[:-2])) + 1
        return int(getattr(self, s))

    def nbytes(self, a: Array) -> int:
        """Bytes of one ``a`` (per layer for a per-layer array, per record for cell records)."""
        return int(np.prod(self.shape(a.shape), dtype=np.int64)) * np.dtype(a.dtype).itemsize


_REGISTRY: dict[str, Statistic] = {}


def register(stat: Statistic) -> Statistic:
    """Add ``stat`` to the registry (after the statistics registered before it: a part's arrays
    are written in registration order). Its outputs must be new; an accumulator it shares with
    another statistic of its pass (it reads it) must be declared the same."""
    if stat.name in _REGISTRY:
        raise ValueError(f"a statistic {stat.name!r} is already registered")
    names = {a.name for s in _REGISTRY.values() for a in s.outputs}
    for a in stat.outputs:
        if a.name in names:
            raise ValueError(f"statistic {stat.name!r}: output {a.name!r} belongs to another statistic")
    for a in stat.accumulators:
        for other in accumulators(stat.pass_, None):
            if other.name == a.name and other != a:
                raise ValueError(f"statistic {stat.name!r}: accumulator {a.name!r} is declared otherwise before")
    _REGISTRY[stat.name] = stat
    return stat


def unregister(name: str) -> None:
    """Remove the statistic ``name`` (tests of statistics added at run time)."""
    _REGISTRY.pop(name)


def statistics(pass_: str | None = None, dims: Dims | None = None) -> list[Statistic]:
    """The registered statistics (of one pass; only those ``dims`` enables), in order."""
    return [
        s for s in _REGISTRY.values() if (pass_ is None or s.pass_ == pass_) and (dims is None or dims.enabled(s.when))
    ]


def accumulators(pass_: str, dims: Dims | None) -> list[Array]:
    """The per-layer accumulators ``pass_`` fills under ``dims`` (None: all; each once, in order)."""
    out: dict[str, Array] = {}
    for s in statistics(pass_, dims):
        for a in s.accumulators:
            out.setdefault(a.name, a)
    return list(out.values())


def allocate(pass_: str, layers: int, dims: Dims) -> dict[str, np.ndarray]:
    """The accumulators of ``pass_`` for ``layers`` layers, filled with their initial values."""
    return {a.name: np.full((layers,) + dims.shape(a.shape), a.fill, a.dtype) for a in accumulators(pass_, dims)}


def outputs(pass_: str | None = None, dims: Dims | None = None) -> list[Array]:
    """The outputs of the statistics (of ``pass_``, enabled by ``dims``), in part order."""
    return [a for s in statistics(pass_, dims) for a in s.outputs]


def finish(pass_: str, acc: dict, ctx, dims: Dims) -> dict[str, np.ndarray]:
    """A shard's part of ``pass_``: every enabled statistic's outputs, named as in parts
    (:data:`PART_PREFIX`), checked against the registry (names, dtypes; shapes where declared).

    Parameters
    ----------
    pass_ : str
    acc : dict of ndarray
        The pass's accumulators (first axis: its layers).
    ctx : the pass object (its plan, layers, settings, edges ...), given to each ``finish``
    dims : Dims
    """
    part: dict[str, np.ndarray] = {}
    layers = int(ctx.hi - ctx.lo)
    for s in statistics(pass_, dims):
        got = s.finish(acc, ctx) if s.finish is not None else {a.name: acc[a.name] for a in s.outputs}
        need = {a.name for a in s.outputs if not a.optional}
        if not need <= set(got) <= {a.name for a in s.outputs}:
            raise RuntimeError(f"statistic {s.name!r} gave {sorted(got)}, declared {[a.name for a in s.outputs]}")
        for a in s.outputs:
            if a.name not in got:
                continue
            v = np.asarray(got[a.name])
            if v.dtype != np.dtype(a.dtype):
                raise RuntimeError(f"statistic {s.name!r}: {a.name} is {v.dtype}, declared {a.dtype}")
            if a.shape is not None:
                lead = (layers,) if a.per_layer else (v.shape[:1] if a.combine == "cells" else ())
                want = lead + dims.shape(a.shape)
                if v.shape != want:
                    raise RuntimeError(f"statistic {s.name!r}: {a.name} has shape {v.shape}, declared {want}")
            part[a.part_name] = v
    return part


def output(part_name: str) -> Array | None:
    """The output stored in parts as ``part_name`` (None: not a registered output)."""
    for a in outputs():
        if a.part_name == part_name:
            return a
    return None


def totals(pass_: str) -> list[str]:
    """Part names of the whole-shard outputs of ``pass_`` (``sum`` / ``min`` / ``max`` / ``same``):
    the small exact totals a later pass reads without the per-layer arrays."""
    return [a.part_name for a in outputs(pass_) if a.combine in ("sum", "min", "max", "same")]


def combine(out: dict, part_name: str, arr: np.ndarray, path) -> None:
    """Combine the whole-shard output stored as ``part_name`` into ``out[name]`` by its rule."""
    a = output(part_name)
    if a is None or a.combine in ("layer", "cells"):
        raise ValueError(f"{path}: {part_name!r} is not a whole-shard statistic of this filterdb")
    if a.name not in out:
        out[a.name] = np.array(arr, copy=True)
    elif a.combine == "min":
        out[a.name] = np.minimum(out[a.name], arr)
    elif a.combine == "max":
        out[a.name] = np.maximum(out[a.name], arr)
    elif a.combine == "same":
        if not np.array_equal(out[a.name], arr):
            raise ValueError(f"{path}: {a.name} differs from the other shards'")
    else:
        out[a.name] = out[a.name] + arr


def layer_bytes(pass_: str, dims: Dims, kind: str = "accumulators") -> int:
    """Bytes per layer of ``pass_``'s accumulators (a shard job) or of its per-layer outputs (a
    gather, ``kind="outputs"``) under ``dims``."""
    arrays = accumulators(pass_, dims) if kind == "accumulators" else [a for a in outputs(pass_, dims) if a.per_layer]
    return sum(dims.nbytes(a) for a in arrays)


def cell_bytes(pass_: str, dims: Dims) -> int:
    """Bytes per open cell of ``pass_``'s statistics under ``dims`` (a fine histogram's record)."""
    return sum(dims.nbytes(a) for s in statistics(pass_, dims) for a in s.per_cell)


def total_bytes(pass_: str, dims: Dims) -> int:
    """Bytes of ``pass_``'s whole-shard outputs under ``dims`` (one copy)."""
    return sum(dims.nbytes(a) for a in outputs(pass_, dims) if a.combine in ("sum", "min", "max", "same"))


def table() -> list[dict]:
    """One row per output: statistic, pass, condition, array, dtype, shape, combine rule and
    result file (the method doc's table of statistics)."""
    rows = []
    for s in _REGISTRY.values():
        for a in s.outputs:
            shape = ("L",) if a.per_layer else (("records",) if a.combine == "cells" else ())
            rows.append(
                {
                    "statistic": s.name,
                    "pass": s.pass_,
                    "when": s.when or "always",
                    "array": a.name,
                    "dtype": a.dtype,
                    "shape": "(" + ", ".join(str(v) for v in shape + tuple(a.shape)) + ")",
                    "combine": a.combine,
                    "result": "cell_hist" if a.combine == "cells" else s.result,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# The statistics of the study (docs/method.md): registration order is the order of a part's arrays

F8, I8, U4 = "float64", "int64", "uint32"


def _exact_totals(acc, ctx):
    # the exact sums of this part's layers (filterdb.exactsum): any later job adds those of all
    # parts and gets the global PCA without the per-layer arrays, whatever the sharding
    return {
        "count": np.array(int(acc["n"].sum()), np.int64),
        "sum_limbs": compiled.exact_limbs(acc["sum"]),
        "outer_limbs": compiled.exact_limbs(acc["outer"]),
    }


def _quality(acc, ctx):
    q = quality.from_moments(
        acc["n"],
        acc["absmax"],
        acc["n_sparse"],
        acc["n_clean"],
        acc["g_all"],
        acc["g_clean"],
        acc["ortho"],
        ctx.plan.out_channels[ctx.lo : ctx.hi],
    )
    out = {f"quality_{f}": q[f] for f in quality.FIELDS}
    # the sensitivity sweep of eps: per layer the sparse filters at each threshold, and the
    # thresholds (the same in every part: checked equal by the gather)
    out["quality_n_sparse_grid"] = acc["n_sparse_grid"]
    out["quality_eps_grid"] = ctx.eps_grid
    return out


_QUALITY_DTYPES = {"n_filters": I8, "n_sparse": I8, "notes": I8}

register(
    Statistic(
        "moments",
        "sums",
        accumulators=(Array("n", I8), Array("sum", F8, ("d",)), Array("outer", F8, ("d", "d"))),
        outputs=(Array("n", I8), Array("sum", F8, ("d",)), Array("outer", F8, ("d", "d"))),
        doc="filters, sum and sum of outer products of the peak-scaled filters per layer (PCA, §3)",
    )
)
register(
    Statistic(
        "nonfinite",
        "sums",
        accumulators=(Array("nonfinite", I8), Array("first_bad", I8, fill=-1)),
        outputs=(Array("nonfinite", I8),),
        doc="rows holding NaN/Inf per layer (stream.nonfinite)",
    )
)
register(
    Statistic(
        "exact_totals",
        "sums",
        outputs=(
            Array("count", I8, (), "sum"),
            Array("sum_limbs", I8, ("d", "limbs"), "sum"),
            Array("outer_limbs", I8, ("d", "d", "limbs"), "sum"),
        ),
        finish=_exact_totals,
        doc="the exact sums of the shard's layers: the global PCA from the parts alone",
    )
)
register(
    Statistic(
        "quality",
        "sums",
        when="quality",
        accumulators=(
            Array("absmax", F8, fill=np.nan),
            Array("n_sparse", I8),
            Array("n_clean", I8),
            Array("g_all", F8, ("d", "d")),
            Array("g_clean", F8, ("d", "d")),
            Array("ortho", F8, fill=np.nan),
            Array("n_sparse_grid", I8, ("eps",)),
        ),
        outputs=tuple(Array(f"quality_{f}", _QUALITY_DTYPES.get(f, F8)) for f in quality.FIELDS)
        + (Array("quality_n_sparse_grid", I8, ("eps",)), Array("quality_eps_grid", F8, ("eps",), "same")),
        finish=_quality,
        doc="the layer quality metrics from the moments of the unscaled weights (§9), sparse counts per eps",
    )
)
register(
    Statistic(
        "coefficient_range",
        "range",
        accumulators=(Array("cmin", F8, ("d",), fill=np.inf), Array("cmax", F8, ("d",), fill=-np.inf)),
        outputs=(
            Array("cmin", F8, ("d",)),
            Array("cmax", F8, ("d",)),
            Array("coef_min", F8, (), "min"),
            Array("coef_max", F8, (), "max"),
        ),
        # min__/max__: combined over parts by minimum/maximum (the shared range of the hist pass)
        finish=lambda acc, ctx: {
            "cmin": acc["cmin"],
            "cmax": acc["cmax"],
            "coef_min": np.array(acc["cmin"].min() if acc["cmin"].size else np.inf),
            "coef_max": np.array(acc["cmax"].max() if acc["cmax"].size else -np.inf),
        },
        doc="per layer the least and greatest PCA coefficient (the shared histogram range)",
    )
)
register(
    Statistic(
        "histograms",
        "hist",
        accumulators=(Array("counts", U4, ("d", "bins")),),
        outputs=(Array("counts", U4, ("d", "bins")), Array("edges", F8, ("bins+1",), "same")),
        finish=lambda acc, ctx: {"counts": acc["counts"], "edges": ctx.edges},
        doc="per layer a histogram of each PCA coefficient over the shared range (KL divergences, §5)",
    )
)
register(
    Statistic(
        "fixed_histograms",
        "hist",
        when="fixed",
        accumulators=(Array("fixed_counts", U4, ("d", "bins")), Array("fixed_outside", I8, ("d",))),
        outputs=(
            Array("fixed_counts", U4, ("d", "bins")),
            Array("fixed_outside", I8, ("d",)),
            Array("fixed_edges", F8, ("bins+1",), "same"),
        ),
        finish=lambda acc, ctx: {
            "fixed_counts": acc["fixed_counts"],
            "fixed_outside": acc["fixed_outside"],
            "fixed_edges": ctx.xedges,
        },
        doc="histograms over the fixed range models.range, and the values outside it",
    )
)
register(
    Statistic(
        "cell_histograms",
        "hist",
        when="fine",
        outputs=(
            Array("cell", I8, (), "cells"),
            Array("cell_edges", F8, ("fine+1",), "same"),
            Array("cell_counts", U4, ("d", "fine"), "cells", optional=True),
        ),
        per_cell=(Array("pool", U4, ("d", "fine")),),
        finish=lambda acc, ctx: ctx.cell_outputs(),
        doc="fine histograms of each coefficient per cell of the grids (stats/cell_hist.npy)",
    )
)
register(
    Statistic(
        "densities",
        "hist",
        when="density",
        outputs=(
            Array("density", I8, ("pairs", "dbins", "dbins"), "sum"),
            Array("density_pairs", I8, ("pairs", 2), "same"),
            Array("density_edges", F8, ("dbins+1",), "same"),
        ),
        finish=lambda acc, ctx: {
            "density": ctx.dens.astype(np.int64),
            "density_pairs": ctx.pairs,
            "density_edges": np.linspace(ctx.dlo, ctx.dhi, ctx.dbins + 1),
        },
        doc="2-D histograms of coefficient pairs over all filters (density.pairs)",
    )
)
