"""The streamed passes over the filter rows and the gathering of their per-shard parts.

Each pass reads a shard's rows once, block by block (:mod:`filterdb.stream`), and hands every
block to one compiled kernel (:mod:`filterdb.kernels`) that loops over the block's layers: no
per-layer Python except for orthogonality (one BLAS product per layer). Per-layer results have the
layer as first axis, so a shard's part holds only its own layers; the fine per-cell histograms of
the ``hist`` pass hold only the shard's own cells (``cell`` ids + counts). Gathering streams the
parts one at a time into the gathered arrays (per-layer entries placed by layer number, cell
histograms added into a memory-mapped ``.npy``, ``total__*`` arrays summed), so its memory does not
grow with the number of shards.

Passes (see docs/method.md):

``sums``  — ``n``, ``sum`` (d,), ``outer`` (d, d) of the peak-scaled filters per layer (float64,
            row by row), ``nonfinite`` rows per layer, and the quality moments of the unscaled
            weights (``quality_*`` arrays) when quality is on, with the sparse filters counted for
            every eps of the sensitivity sweep (``quality_n_sparse_grid`` (L, E) over
            ``quality_eps_grid`` (E,)).
``range`` — ``cmin``, ``cmax`` (d,) of the PCA coefficients per layer.
``hist``  — ``counts`` (bins per coefficient) per layer over the shared range; with a fixed range
            (config ``models.range``) also ``fixed_counts`` over ``fixed_edges`` and the values
            outside it, ``fixed_outside`` (L, d); fine per-cell histograms (``cell``,
            ``cell_counts``); 2-D histograms of coefficient pairs (``total__density``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import compiled, quality, scaling
from .histogram import uniform_edges
from .results import Plan, load_part
from .shape import STUDY
from .stream import DEFAULT_BLOCK_ROWS, ROW_BYTES, BlockReader, plan_blocks, plan_shards, progress

PASSES = ("sums", "range", "hist")
#: The per-layer quality arrays of the sums pass (:data:`filterdb.quality.FIELDS`).
QUALITY_FIELDS = quality.FIELDS


class NonFiniteError(ValueError):
    """Filters holding NaN or Inf, with the policy ``error``."""


def _schema(key: str):
    """A default factory reading the schema's default of ``key`` (:func:`filterdb.settings.schema_default`)."""
    from .settings import schema_default

    return lambda: schema_default(key)


@dataclass
class PassSettings:
    """Settings of the streamed passes (config ``stream``, ``histogram``, ``density``, ``quality``).

    Built by :meth:`from_settings` from the chain's :class:`filterdb.settings.Settings`; a field
    left out when constructing directly takes the schema's default (or is off: no quality metrics,
    fine or fixed-range histograms, densities; one thread).

    Attributes
    ----------
    block_rows : int
        Most rows read per block (whole layers).
    threads : int
        Compute threads inside one job: the job's layers are cut into this many contiguous lanes of
        about equal filter count, each streamed by its own reader and kernel thread into its own
        slice of the per-layer arrays (no barrier per block); ``block_rows`` is shared out
        between the lanes, so the read buffers take the same memory.
    precision : {"float32", "float16", "float64"}
        How a stored value is loaded (:data:`filterdb.kernels.PRECISIONS`, docs/method.md §1):
        the study's float16 arithmetic (the value rounded straight to float16, each peak-scaled
        value the float32 quotient rounded to float16), rounded to float32, or as stored.
    nonfinite : {"error", "drop"}
        Filters holding NaN/Inf: stop with a message naming the row, model and layer, or leave
        them out of every statistic (counted per layer in ``nonfinite``).
    quality_eps : float or None
        Sparsity threshold of the quality metrics; None = no quality metrics.
    quality_eps_grid : sequence of float
        The sparsity thresholds of the sensitivity sweep (config ``quality.sensitivity.eps``):
        the sparse filters of each layer are counted for each of them in the same loop
        (``quality_n_sparse_grid``). ``quality_eps`` is always among them (added when missing);
        stored sorted, without repeats (:func:`eps_grid`).
    orthogonality : bool
        Compute the orthogonality of each layer (an out x out product per layer: the costliest
        quality metric; False leaves it NaN).
    fine_bins : int
        Bins of the fine per-cell histograms (0 = none).
    density_pairs : list of (int, int)
        Coefficient pairs of the 2-D histograms.
    density_bins : int
    density_extent : (float, float)
    fixed_range : (float, float) or None
        A fixed coefficient range ``[lo, hi]`` (config ``models.range``): the hist pass also
        counts every coefficient into ``bins`` equal bins over it (``fixed_counts``, numpy's rule
        as ``counts``); values outside it are counted per layer and coefficient in
        ``fixed_outside`` and left out. None (``auto``): no such histograms.
    progress : bool
        tqdm progress on stderr.
    bypass_cache : bool
        Read past the page cache (``O_DIRECT``; :class:`filterdb.stream.BlockReader`): for a DB
        larger than memory.
    """

    block_rows: int = field(default_factory=_schema("stream.block_rows"))
    threads: int = 1
    precision: str = field(default_factory=_schema("stream.precision"))
    nonfinite: str = field(default_factory=_schema("stream.nonfinite"))
    quality_eps: float | None = None
    quality_eps_grid: tuple = ()
    orthogonality: bool = field(default_factory=_schema("quality.orthogonality"))
    fine_bins: int = 0
    density_pairs: list = field(default_factory=list)
    density_bins: int = field(default_factory=_schema("density.bins"))
    density_extent: tuple = field(default_factory=lambda: tuple(_schema("density.extent")()))
    fixed_range: tuple | None = None
    progress: bool = True
    bypass_cache: bool = False

    @classmethod
    def from_settings(cls, settings, threads: int = 1, db_path=None, progress: bool = False) -> PassSettings:
        """The passes' settings of the chain's settings.

        Parameters
        ----------
        settings : filterdb.settings.Settings
            The whole config or a pass's slice of it (:data:`filterdb.settings.STEP_KEYS`): a
            section the slice lacks is off here (no quality metrics without ``quality``, no fine
            or 2-D histograms without ``histogram`` / ``density``).
        threads : int
            Compute threads of the job.
        db_path : str, optional
            The DB, for ``stream.bypass_page_cache: auto`` (bypassed when the DB is larger than
            this machine's memory).
        progress : bool

        Returns
        -------
        PassSettings
        """
        from .stream import page_cache_fits

        st, q, d, h = settings.stream, settings.quality, settings.density, settings.histogram
        bypass = st["bypass_page_cache"]
        if bypass == "auto":
            bypass = db_path is not None and not page_cache_fits(db_path)
        kw = {}  # a key the slice lacks keeps the field's default (the schema's, or off)
        if q is not None:
            kw.update(
                quality_eps=float(q["eps"]),
                quality_eps_grid=tuple(q["sensitivity"]["eps"]),
                orthogonality=bool(q["orthogonality"]),
            )
        if "fine_bins" in h:
            kw["fine_bins"] = int(h["fine_bins"])
        if "pairs" in d:
            kw["density_pairs"] = [tuple(v) for v in d["pairs"]]
        if "bins" in d:
            kw["density_bins"] = int(d["bins"])
        if "extent" in d:
            kw["density_extent"] = tuple(d["extent"])
        return cls(
            bypass_cache=bool(bypass),
            block_rows=int(st["block_rows"]),
            threads=int(threads),
            precision=st["precision"],
            nonfinite=st["nonfinite"],
            fixed_range=fixed_range(settings.fixed_range),
            progress=progress,
            **kw,
        )


def eps_grid(eps: float, grid=()) -> np.ndarray:
    """The sparsity thresholds of the sensitivity sweep: ``grid`` and ``eps``, sorted, without
    repeats (float64).

    Parameters
    ----------
    eps : float
        The configured threshold (``quality.eps``); always in the result.
    grid : sequence of float
        The sweep (``quality.sensitivity.eps``); each a finite positive number (a fraction of the
        layer's max ``|w|``).

    Returns
    -------
    (E,) float64 ndarray

    Raises
    ------
    ValueError
        On a value that is not a finite positive number.

    Examples
    --------
    >>> eps_grid(0.01, [0.1, 0.001, 0.01]).tolist()
    [0.001, 0.01, 0.1]
    """
    vals = [eps, *list(grid or ())]
    for v in vals:
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not ok or not (0.0 < float(v) < np.inf):
            raise ValueError(
                f"quality.sensitivity.eps / quality.eps: {v!r} is not a sparsity threshold "
                f"(expected a finite number > 0, a fraction of the layer's max |w|)"
            )
    return np.unique(np.asarray(vals, np.float64))


def fixed_range(value) -> tuple[float, float] | None:
    """The fixed coefficient range of config ``models.range``: ``(lo, hi)``, or None for ``auto``
    (or a missing key).

    Parameters
    ----------
    value : "auto", None or a sequence ``[lo, hi]``

    Returns
    -------
    (float, float) or None

    Raises
    ------
    ValueError
        Unless ``value`` is ``auto``/None or two finite numbers with ``lo < hi``.

    Examples
    --------
    >>> fixed_range([-3, 3])
    (-3.0, 3.0)
    >>> fixed_range("auto") is None
    True
    """
    if value is None or (isinstance(value, str) and value == "auto"):
        return None
    bad = ValueError(f"models.range: expected auto or [lo, hi], two finite numbers with lo < hi; got {value!r}")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise bad
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise bad from None
    if any(isinstance(v, bool) for v in value) or not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise bad
    return lo, hi


# ---------------------------------------------------------------------------------------------
# Passes: each owns its per-layer arrays for the layers [lo, hi) of one shard


class _Pass:
    kind = ""
    #: per-layer arrays (first axis = the pass's layers): a lane writes its own slice of them
    per_layer: tuple[str, ...] = ()

    def __init__(self, plan: Plan, lo: int, hi: int, settings: PassSettings):
        self.plan, self.lo, self.hi, self.s = plan, lo, hi, settings
        self.k = hi - lo
        self.d = int(plan.width)  # values per filter (k²; filterdb.shape)
        self.drop = settings.nonfinite == "drop"
        self.prec = scaling.PRECISIONS[settings.precision]

    def _prec(self, x) -> int:
        """The kernels' ``prec`` for rows ``x``: rounding float32 or float16 rows to float32 changes
        nothing, so they are loaded as stored (the kernels skip that loop)."""
        return 2 if self.prec == 0 and x.dtype != np.float64 else self.prec

    def lane(self, lo: int, hi: int) -> _Pass:
        """The same pass for layers ``[lo, hi)`` (inside this pass's), writing into this pass's
        per-layer arrays (views): lanes run concurrently and write disjoint slices."""
        sub = object.__new__(type(self))
        sub.__dict__.update(self.__dict__)
        sub.lo, sub.hi, sub.k = lo, hi, hi - lo
        for name in self.per_layer:
            setattr(sub, name, getattr(self, name)[lo - self.lo : hi - self.lo])
        return sub

    def join(self, lanes: list[_Pass]) -> None:
        """Take over what the finished ``lanes`` did not write into the shared arrays."""

    def begin_block(self, first: int, end: int) -> None:
        """Called before layers ``first..end-1`` (local positions) are processed."""

    def end_block(self, first: int, end: int) -> None:
        """Called after layers ``first..end-1`` are processed."""

    def block(self, x: np.ndarray, a: int, pos: np.ndarray) -> None:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _bounds(self, a: int, pos: np.ndarray):
        g = self.lo + pos
        return self.plan.row_start[g] - a, self.plan.row_end[g] - a


class SumsPass(_Pass):
    kind = "sums"
    per_layer = (
        "n",
        "sum",
        "outer",
        "nonfinite",
        "first_bad",
        "absmax",
        "n_sparse",
        "n_clean",
        "g_all",
        "g_clean",
        "ortho",
        "n_sparse_grid",
    )

    def __init__(self, plan, lo, hi, settings):
        super().__init__(plan, lo, hi, settings)
        k = self.k
        self.n = np.zeros(k, np.int64)
        d = self.d
        self.sum = np.zeros((k, d))
        self.outer = np.zeros((k, d, d))
        self.nonfinite = np.zeros(k, np.int64)
        self.first_bad = np.full(k, -1, np.int64)
        self.quality = settings.quality_eps is not None
        if self.quality:
            self.absmax = np.full(k, np.nan)
            self.n_sparse = np.zeros(k, np.int64)
            self.n_clean = np.zeros(k, np.int64)
            self.g_all = np.zeros((k, d, d))
            self.g_clean = np.zeros((k, d, d))
            self.ortho = np.full(k, np.nan)
            self.eps_grid = eps_grid(float(settings.quality_eps), settings.quality_eps_grid)
            self.n_sparse_grid = np.zeros((k, self.eps_grid.size), np.int64)
        else:
            self.per_layer = self.per_layer[:5]

    def block(self, x, a, pos):
        ls, le = self._bounds(a, pos)
        q = self.quality
        eps = float(self.s.quality_eps) if q else 0.0
        z1, z3 = np.zeros(0), np.zeros((0, self.d, self.d))
        compiled.load().sums_block(
            x,
            ls,
            le,
            pos,
            self.drop,
            self._prec(x),
            self.n,
            self.sum,
            self.outer,
            self.nonfinite,
            self.first_bad,
            q,
            eps,
            self.absmax if q else z1,
            self.n_sparse if q else z1.astype(np.int64),
            self.n_clean if q else z1.astype(np.int64),
            self.g_all if q else z3,
            self.g_clean if q else z3,
            self.eps_grid if q else z1,
            self.n_sparse_grid if q else np.zeros((0, 0), np.int64),
        )
        if q and self.s.orthogonality:
            if x.dtype == np.uint16:  # float16 rows: the float32 values, exact (compiled: fast)
                xv = np.empty(x.shape, np.float32)
                compiled.load().half_to_float32(x, xv)
            else:
                xv = scaling.values(x, self.prec)
            self._orthogonality(xv, ls, le, pos)

    def _orthogonality(self, x, ls, le, pos) -> None:
        """Orthogonality of the block's layers: layers of one shape in one batched product (a
        wide model repeats few shapes), so small layers cost no per-layer Python."""
        out = self.plan.out_channels[self.lo + pos]
        n = le - ls
        with np.errstate(invalid="ignore"):
            o = np.where(np.isfinite(out), out, 0).astype(np.int64)
        ok = (n > 0) & (o >= 2) & (o == out) & (n % np.maximum(o, 1) == 0)
        lone = ok & (self.nonfinite[pos] > 0) & self.drop
        for j in np.flatnonzero(lone):  # rows holding NaN/Inf left out: the layer alone
            w = x[ls[j] : le[j]]
            w = w[np.isfinite(w).all(axis=1)]
            if quality.orthogonality_note(w.shape[0], out[j]) == 0:
                self.ortho[pos[j]] = quality.orthogonality(w, out[j])
        sel = np.flatnonzero(ok & ~lone)
        if not sel.size:
            return
        key = o[sel] * (1 << 32) + n[sel]
        for kv in np.unique(key):
            grp = sel[key == kv]
            oc, nn = int(o[grp[0]]), int(n[grp[0]])
            step = max(1, int(4_000_000 // (oc * oc + nn * self.d)))  # bounded temporaries
            for g0 in range(0, grp.size, step):
                g = grp[g0 : g0 + step]
                if np.all(ls[g[1:]] == le[g[:-1]]):  # one run of rows (or one layer): a view
                    W = x[ls[g[0]] : le[g[-1]]].reshape(g.size, nn, self.d)
                else:
                    W = np.stack([x[ls[j] : le[j]] for j in g])
                self.ortho[pos[g]] = quality.orthogonality_many(W, oc)

    def check_finite(self, layer_names=None) -> None:
        """With the ``error`` policy: raise naming the first row holding NaN/Inf."""
        if self.drop or not self.nonfinite.any():
            return
        p = int(np.flatnonzero(self.nonfinite)[0])
        g = self.lo + p
        row = int(self.plan.row_start[g] + self.first_bad[p])
        name = layer_names(g) if layer_names else f"layer {g}"
        raise NonFiniteError(
            f"filter row {row} ({name}) holds NaN or Inf; {int(self.nonfinite.sum())} such filters in "
            f"{int((self.nonfinite > 0).sum())} layers of this shard. Fix the DB, or set "
            f"stream.nonfinite: drop to leave them out (counted in stats/sums.npz 'nonfinite')"
        )

    def arrays(self):
        out = {"n": self.n, "sum": self.sum, "outer": self.outer, "nonfinite": self.nonfinite}
        # the exact sums of this part's layers (filterdb.exactsum): any later job adds those of all
        # parts and gets the global PCA without the per-layer arrays, whatever the sharding
        out["total__count"] = np.array(int(self.n.sum()), np.int64)
        out["total__sum_limbs"] = compiled.exact_limbs(self.sum)
        out["total__outer_limbs"] = compiled.exact_limbs(self.outer)
        if self.quality:
            q = quality.from_moments(
                self.n,
                self.absmax,
                self.n_sparse,
                self.n_clean,
                self.g_all,
                self.g_clean,
                self.ortho,
                self.plan.out_channels[self.lo : self.hi],
            )
            out.update({f"quality_{f}": q[f] for f in QUALITY_FIELDS})
            # the sensitivity sweep of eps: per layer the sparse filters at each threshold, and the
            # thresholds (the same in every part: checked equal by the gather)
            out["quality_n_sparse_grid"] = self.n_sparse_grid
            out["total__quality_eps_grid"] = self.eps_grid
        return out


class RangePass(_Pass):
    kind = "range"
    per_layer = ("cmin", "cmax")

    def __init__(self, plan, lo, hi, settings, mean, components):
        super().__init__(plan, lo, hi, settings)
        self.mean = np.ascontiguousarray(mean, np.float64)
        self.comps = np.ascontiguousarray(components, np.float64)
        c = self.comps.shape[0]
        self.cmin = np.full((self.k, c), np.inf)
        self.cmax = np.full((self.k, c), -np.inf)

    def block(self, x, a, pos):
        ls, le = self._bounds(a, pos)
        k = compiled.load()
        k.range_block(x, ls, le, pos, self.drop, self._prec(x), self.mean, self.comps, self.cmin, self.cmax)

    def arrays(self):
        # min__/max__: combined over parts by minimum/maximum (the shared range of the hist pass)
        return {
            "cmin": self.cmin,
            "cmax": self.cmax,
            "min__coef_min": np.array(self.cmin.min() if self.cmin.size else np.inf),
            "max__coef_max": np.array(self.cmax.max() if self.cmax.size else -np.inf),
        }


def _write_all(fd: int, arrays: list[np.ndarray], offset: int | None) -> None:
    """Write the contiguous ``arrays`` one after the other (``os.pwritev`` at ``offset``, or
    ``os.writev`` at the file position when None), from their memory, whatever the number of
    buffers per call allows and however short a write comes back."""
    views = [memoryview(a).cast("B") for a in arrays]
    step = max(1, min(getattr(os, "IOV_MAX", 1024), 1024))
    while views:
        batch = views[:step]
        k = os.writev(fd, batch) if offset is None else os.pwritev(fd, batch, offset)
        if offset is not None:
            offset += k
        while views and k >= len(views[0]):  # drop what was written
            k -= len(views[0])
            views.pop(0)
        if k:
            views[0] = views[0][k:]


class _CellSink:
    """The file receiving closed fine cell histograms (records of ``(d, fine_bins)`` uint32) and
    their cell ids in file order; shared by the lanes of a pass (one lock)."""

    def __init__(self, path):
        self.fh = open(path, "wb")
        self.ids: list[np.ndarray] = []
        self.lock = threading.Lock()

    def put(self, ids: np.ndarray, pool: np.ndarray, slots: np.ndarray) -> None:
        """Append the records ``pool[slots]`` (cells ``ids``), written from the pool (no copy)."""
        with self.lock:
            self.fh.flush()
            _write_all(self.fh.fileno(), [pool[int(j)] for j in slots], None)
            self.ids.append(ids)

    def close(self) -> None:
        self.fh.close()


class CellHistFile:
    """A sink for the hist pass's closed cells that writes each record straight into its place in a
    ``(n_cells, d, fine_bins)`` uint32 ``.npy`` (cells never closed stay 0): no records file and no
    gather when one job runs the whole pass. A cell closed twice (by two lanes) is added to what
    is there. Shared by the lanes (one lock); the caller closes it."""

    def __init__(self, path, n_cells: int, fine_bins: int, width: int = STUDY.size):
        self.fh = open(path, "wb+")
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": np.dtype(np.uint32).str, "fortran_order": False, "shape": (n_cells, width, fine_bins)}
        )
        self.fh.flush()
        self.base = self.fh.tell()
        self.rec = int(width) * fine_bins * 4
        self.fh.truncate(self.base + n_cells * self.rec)  # zeros (a sparse file until written)
        self.fd = self.fh.fileno()
        self.written = np.zeros(n_cells, bool)
        self.ids: list[np.ndarray] = []
        self.lock = threading.Lock()

    def put(self, ids: np.ndarray, pool: np.ndarray, slots: np.ndarray) -> None:
        """Write the records ``pool[slots]`` of cells ``ids`` into their places, straight from the
        pool (one write per run of consecutive new cells, no copy)."""
        ids = np.asarray(ids, np.int64)
        slots = np.asarray(slots, np.int64)
        with self.lock:
            self.ids.append(ids)
            order = np.argsort(ids, kind="stable")
            ids, slots = ids[order], slots[order]
            fresh = ~self.written[ids]
            cut = np.flatnonzero((np.diff(ids) != 1) | (fresh[1:] != fresh[:-1])) + 1
            for run in np.split(np.arange(ids.size), cut):
                if not run.size:
                    continue
                if fresh[run[0]]:
                    off = self.base + int(ids[run[0]]) * self.rec
                    _write_all(self.fd, [pool[int(slots[j])] for j in run], off)
                    continue
                for j in run:  # closed before by another lane: add
                    off = self.base + int(ids[j]) * self.rec
                    old = np.frombuffer(os.pread(self.fd, self.rec, off), np.uint32)
                    os.pwrite(self.fd, (old + pool[int(slots[j])].reshape(-1)).tobytes(), off)
            self.written[ids] = True

    def close(self) -> None:
        self.fh.close()


class HistPass(_Pass):
    """Coarse per-layer histograms, fine per-cell histograms and 2-D densities of one shard.

    Fine histograms live in a pool of slots, one per *open* cell (a cell whose layers in this shard
    are not all processed yet). When the pass moves past a cell's last layer, its histogram is
    closed: appended to ``cell_sink`` (a file of ``(d, fine_bins)`` uint32 records, ids in
    ``part__cell``) and its slot reused, so the job's memory grows with the cells of a read block,
    not with the cells of the shard. Without ``cell_sink`` (in-process runs) closed cells are kept
    in memory (``part__cell_counts``). Lanes (threads) have their own pools: a cell whose layers lie
    in two lanes is closed once by each, and the gather adds its records.
    """

    kind = "hist"

    def __init__(self, plan, lo, hi, settings, mean, components, edges, cell_sink=None):
        super().__init__(plan, lo, hi, settings)
        self.mean = np.ascontiguousarray(mean, np.float64)
        self.comps = np.ascontiguousarray(components, np.float64)
        self.edges = np.ascontiguousarray(edges, np.float64)
        bins = self.edges.size - 1
        c = self.comps.shape[0]
        self.counts = np.zeros((self.k, c, bins), np.uint32)
        self.fb = max(int(settings.fine_bins), 0)
        cells = plan.cell[lo:hi]
        self.cells = np.unique(cells[cells >= 0]) if self.fb else np.zeros(0, np.int64)
        self.lcell = np.where(cells >= 0, np.searchsorted(self.cells, cells), -1).astype(np.int64)
        if not self.fb:
            self.lcell[:] = -1
        self.fedges = np.linspace(self.edges[0], self.edges[-1], self.fb + 1) if self.fb else np.zeros(1)
        # last layer (local position) of each local cell: the cell is closed after it
        self.last = np.full(self.cells.size, -1, np.int64)
        has = self.lcell >= 0
        np.maximum.at(self.last, self.lcell[has], np.flatnonzero(has))
        self.slot_of = np.full(self.cells.size, -1, np.int64)
        self.lslot = np.full(self.k, -1, np.int64)
        self.pool = np.zeros((0, c, self.fb), np.uint32)
        self.free: list[int] = []
        self.own_sink = isinstance(cell_sink, (str, os.PathLike))  # else a shared sink (lanes, CellHistFile)
        self.sink = _CellSink(cell_sink) if self.own_sink else cell_sink
        self.closed_ids: list[np.ndarray] = []
        self.closed_mem: list[np.ndarray] = []
        self.pairs = np.array(settings.density_pairs, np.int64).reshape(-1, 2)
        if self.pairs.size and (self.pairs.min() < 0 or self.pairs.max() >= c):
            raise ValueError(
                f"density.pairs: {settings.density_pairs!r} names a coefficient outside c0..c{c - 1} "
                f"(filters of {self.d} values have {c} coefficients)"
            )
        self.dbins = int(settings.density_bins)
        self.dlo, self.dhi = (float(v) for v in settings.density_extent)
        self.dens = np.zeros((self.pairs.shape[0], self.dbins, self.dbins), np.uint32)
        # the fixed-range histograms (config models.range): as many bins as counts, over [lo, hi]
        self.fixed = fixed_range(settings.fixed_range)
        if self.fixed is not None:
            self.xedges = uniform_edges(*self.fixed, bins)
            self.fixed_counts = np.zeros((self.k, c, bins), np.uint32)
            self.fixed_outside = np.zeros((self.k, c), np.int64)
        else:
            self.xedges = np.zeros(1)
            self.fixed_counts = np.zeros((0, c, 1), np.uint32)
            self.fixed_outside = np.zeros((0, c), np.int64)

    def lane(self, lo, hi):
        sub = HistPass(self.plan, lo, hi, self.s, self.mean, self.comps, self.edges, cell_sink=self.sink)
        a, b = lo - self.lo, hi - self.lo
        sub.counts = self.counts[a:b]
        if self.fixed is not None:
            sub.fixed_counts, sub.fixed_outside = self.fixed_counts[a:b], self.fixed_outside[a:b]
        return sub

    def join(self, lanes):
        dens = self.dens.astype(np.int64)  # the lanes' uint32 counts added without overflow
        for sub in lanes:  # lane order: deterministic in-memory records
            self.closed_ids += sub.closed_ids
            self.closed_mem += sub.closed_mem
            dens += sub.dens
        self.dens = dens

    def begin_block(self, first: int, end: int) -> None:
        """Give every cell of layers ``first..end-1`` a slot in the pool."""
        if not self.fb:
            return
        lc = self.lcell[first:end]
        need = np.unique(lc[lc >= 0])
        need = need[self.slot_of[need] < 0]
        if need.size > len(self.free):
            grow = max(need.size - len(self.free), self.pool.shape[0])
            base = self.pool.shape[0]
            self.pool = np.concatenate([self.pool, np.zeros((grow,) + self.pool.shape[1:], np.uint32)])
            self.free.extend(range(base + grow - 1, base - 1, -1))
        for c in need:
            self.slot_of[c] = self.free.pop()
        self.lslot[first:end] = np.where(lc >= 0, self.slot_of[np.maximum(lc, 0)], -1)

    def end_block(self, first: int, end: int) -> None:
        """Close the cells whose last layer has been processed."""
        if not self.fb:
            return
        lc = self.lcell[first:end]
        done = np.unique(lc[lc >= 0])
        done = done[self.last[done] < end]
        if not done.size:
            return
        slots = self.slot_of[done]
        if self.sink is not None:
            self.sink.put(self.cells[done], self.pool, slots)
        else:
            self.closed_mem.append(self.pool[slots])
            self.closed_ids.append(self.cells[done])
        self.pool[slots] = 0
        self.slot_of[done] = -1
        self.free.extend(int(v) for v in slots)

    def block(self, x, a, pos):
        ls, le = self._bounds(a, pos)
        compiled.load().hist_block(
            x,
            ls,
            le,
            pos,
            self.drop,
            self._prec(x),
            self.mean,
            self.comps,
            self.edges,
            self.counts,
            self.lslot[pos],
            self.fedges,
            self.pool,
            self.pairs,
            self.dlo,
            self.dhi,
            self.dbins,
            self.dens,
            self.xedges,
            self.fixed_counts,
            self.fixed_outside,
        )

    def arrays(self):
        out = {"counts": self.counts, "total__edges": self.edges}
        if self.fixed is not None:
            out.update(
                {
                    "fixed_counts": self.fixed_counts,
                    "fixed_outside": self.fixed_outside,
                    "total__fixed_edges": self.xedges,
                }
            )
        if self.fb:
            closed = self.sink.ids if self.sink is not None else self.closed_ids
            ids = np.concatenate(closed) if closed else np.zeros(0, np.int64)
            out.update({"part__cell": ids, "total__cell_edges": self.fedges})
            if self.sink is None:
                out["part__cell_counts"] = (
                    np.concatenate(self.closed_mem)
                    if self.closed_mem
                    else np.zeros((0,) + self.pool.shape[1:], np.uint32)
                )
        if self.own_sink:
            self.sink.close()
        if self.pairs.shape[0]:
            out.update(
                {
                    "total__density": self.dens.astype(np.int64),
                    "total__density_pairs": self.pairs,
                    "total__density_edges": np.linspace(self.dlo, self.dhi, self.dbins + 1),
                }
            )
        return out


def make_pass(
    kind: str, plan: Plan, lo: int, hi: int, settings: PassSettings, *, basis=None, edges=None, cell_sink=None
) -> _Pass:
    """The pass ``kind`` for layers ``[lo, hi)``; ``basis`` = (mean, components) for range/hist,
    ``edges`` the coarse histogram edges for hist, ``cell_sink`` the file that receives the hist
    pass's closed fine cell histograms (None: kept in memory)."""
    if kind == "sums":
        return SumsPass(plan, lo, hi, settings)
    if kind in ("range", "hist") and basis is None:
        raise ValueError(f"the {kind} pass needs the PCA basis (mean, components)")
    if kind == "range":
        return RangePass(plan, lo, hi, settings, *basis)
    if kind == "hist":
        if edges is None:
            raise ValueError("the hist pass needs the histogram edges")
        return HistPass(plan, lo, hi, settings, *basis, edges, cell_sink=cell_sink)
    raise ValueError(f"unknown pass {kind!r}: expected one of {PASSES}")


def run_pass(path: str, key: str, pas: _Pass, desc: str = "pass", layer_names=None) -> dict[str, np.ndarray]:
    """Stream the rows of the pass's layers once and return its arrays plus ``layer``.

    With ``settings.threads`` > 1 the layers are cut into that many contiguous lanes of about
    equal filter count (:func:`filterdb.stream.plan_shards`); each lane streams its own rows with
    its own reader and kernel thread into its slice of the pass's arrays. Every layer is still
    summed row by row in one thread, so the results do not depend on the threads.

    Parameters
    ----------
    path, key : str
        The DB file and its filter dataset.
    pas : pass object from :func:`make_pass`
    desc : str
        Label of the progress bar and the timing line on stderr.
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.
    """
    plan, lo, hi, s = pas.plan, pas.lo, pas.hi, pas.s
    t0 = time.perf_counter()
    total = int(plan.n_filters[lo:hi].sum())
    bar = progress(total, desc) if s.progress and total else None
    threads = max(1, int(s.threads))
    bounds = [(lo + a, lo + b) for a, b in plan_shards(plan.n_filters[lo:hi], threads) if b > a]
    lanes = [pas.lane(a, b) for a, b in bounds] if len(bounds) > 1 else [pas]
    block_rows = lane_block_rows(s.block_rows, len(lanes))
    lock = threading.Lock()

    def stream(lane: _Pass) -> BlockReader:
        with BlockReader(path, key, precision=s.precision, bypass_cache=s.bypass_cache, raw=True) as rd:
            if rd.width != plan.width:
                raise ValueError(
                    f"{path}: dataset '{key}' holds {rd.shape.label} filters ({rd.width} values), but the layer plan "
                    f"was made for {plan.width} values per filter: rerun the layer table of this DB"
                )
            rs, re_ = plan.row_start[lane.lo : lane.hi], plan.row_end[lane.lo : lane.hi]
            blocks = plan_blocks(rs, re_, block_rows, breaks=rd.breaks())
            read = rd.blocks([(a, b) for a, b, _, _ in blocks])
            for (_, _, first, end), ((a, b), x) in zip(blocks, read):
                lane.begin_block(first, end)
                lane.block(x, a, np.arange(first, end))
                lane.end_block(first, end)
                if bar is not None:
                    with lock:
                        bar.update(b - a)
        return rd

    blas = _blas_limit(1)  # one BLAS thread per compute thread: no oversubscription
    try:
        if len(lanes) == 1:
            rd = stream(pas)
        else:
            with ThreadPoolExecutor(len(lanes), thread_name_prefix="filterdb-lane") as pool:
                rd = list(pool.map(stream, lanes))[0]
            pas.join(lanes)
    finally:
        if blas is not None:
            blas.restore_original_limits()
        if bar is not None:
            bar.close()
    if isinstance(pas, SumsPass):
        pas.check_finite(layer_names)
    out = {"layer": np.arange(lo, hi, dtype=np.int64)}
    out.update(pas.arrays())
    dt = time.perf_counter() - t0
    print(
        f"{desc}: {hi - lo} layers, {total} filters in {dt:.2f} s "
        f"({dt / max(total, 1) * 1e9:.0f} ns/filter, {len(lanes)} thread(s), read: {rd.mode}, "
        f"{rd.dtype} ({rd.row_bytes} B/filter) loaded as {s.precision} in the kernels, "
        f"kernels: {compiled.load().mode})",
        file=sys.stderr,
    )
    return out


def run_rows(rows: np.ndarray, pas: _Pass, layer_names=None) -> dict[str, np.ndarray]:
    """The pass ``pas`` over filter rows held in memory (one model's weights: ``filterdb inspect``
    and ``compare``), block by block as :func:`run_pass` streams them from a DB: the same kernels
    and order of operations, so the numbers equal those of a DB holding these rows.

    Parameters
    ----------
    rows : (N, d) ndarray
        float16, float32 or float64 rows (as a DB would store them), numbered as the pass's plan
        numbers them (``row_start`` / ``row_end``).
    pas : pass object from :func:`make_pass`
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.

    Returns
    -------
    dict of ndarray
        As :func:`run_pass`: ``layer`` and the pass's arrays.
    """
    plan, lo, hi = pas.plan, pas.lo, pas.hi
    x = np.asarray(rows)
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"filter rows of dtype {x.dtype}: expected float16, float32 or float64")
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1) if x.ndim != 2 else x)
    if x.shape[1] != plan.width:
        raise ValueError(f"filter rows of {x.shape[1]} values, the layer plan has {plan.width} per filter")
    if x.dtype == np.float16:  # the kernels read float16 as its bit patterns
        x = x.view(np.uint16)
    rs, re_ = plan.row_start[lo:hi], plan.row_end[lo:hi]
    for a, b, first, end in plan_blocks(rs, re_, max(1, int(pas.s.block_rows))):
        pas.begin_block(first, end)
        pas.block(x[a:b], a, np.arange(first, end))
        pas.end_block(first, end)
    if isinstance(pas, SumsPass):
        pas.check_finite(layer_names)
    out = {"layer": np.arange(lo, hi, dtype=np.int64)}
    out.update(pas.arrays())
    return out


def lane_block_rows(block_rows: int, lanes: int) -> int:
    """Rows per read block of each of ``lanes`` lanes: ``block_rows`` shared out (at least 65,536
    rows), so a job's read buffers take about the same memory whatever its threads."""
    return block_rows if lanes <= 1 else max(block_rows // lanes, min(block_rows, 1 << 16))


def _blas_limit(n: int):
    """Limit BLAS (orthogonality's products) to ``n`` threads while a pass runs: a shard job owns
    its cores, and BLAS threads competing with the other jobs made orthogonality several times
    slower. None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return None
    return threadpool_limits(limits=n, user_api="blas")


def run_shard(
    db_path: str,
    key: str,
    plan: Plan,
    kind: str,
    *,
    shard: int = 0,
    shards: int = 1,
    settings: PassSettings | None = None,
    basis=None,
    edges=None,
    layer_names=None,
    cell_sink=None,
) -> dict[str, np.ndarray]:
    """One pass over the layers of shard ``shard`` of ``shards``: the part's arrays.

    Parameters
    ----------
    db_path, key : str
        The DB and its filter dataset.
    plan : Plan
    kind : {"sums", "range", "hist"}
    shard, shards : int
        Zero-based shard index and shard count (:func:`filterdb.stream.plan_shards`).
    settings : PassSettings
    basis : (mean (d,), components (d, d)), for range and hist
    edges : (bins + 1,) coarse histogram edges, for hist
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.
    cell_sink : str, optional
        hist pass: file for the fine cell histograms (records of ``(d, fine_bins)`` uint32, ids in
        ``part__cell``); None keeps them in memory (``part__cell_counts``).
    """
    settings = settings or PassSettings()
    lo, hi = plan_shards(plan.n_filters, shards)[shard]
    pas = make_pass(kind, plan, lo, hi, settings, basis=basis, edges=edges, cell_sink=cell_sink)
    return run_pass(db_path, key, pas, desc=f"{kind} {shard + 1}/{shards}", layer_names=layer_names)


# ---------------------------------------------------------------------------------------------
# Gathering


#: Prefixes of the arrays a part combines with the other parts (sum, minimum, maximum): the
#: workflow keeps them of the sums and range parts in small files of their own
#: (``stats/totals/{pass}/{shard}.npz``), so that rerunning a later pass (e.g. other histogram
#: bins) does not need the earlier passes' temporary parts.
TOTALS = ("total__", "min__", "max__")


def _combine(out: dict, name: str, arr: np.ndarray, path) -> None:
    """Add the part array ``name`` (a :data:`TOTALS` prefix) into ``out[short name]``: summed
    (``total__``; edges, pairs and grids must be equal instead), or by minimum / maximum."""
    short = name.split("__", 1)[1]
    if short not in out:
        out[short] = np.array(arr, copy=True)
    elif name.startswith("min__"):
        out[short] = np.minimum(out[short], arr)
    elif name.startswith("max__"):
        out[short] = np.maximum(out[short], arr)
    elif short.endswith(("edges", "pairs", "grid")):
        if not np.array_equal(out[short], arr):
            raise ValueError(f"{path}: {short} differs from the other shards'")
    else:
        out[short] = out[short] + arr


def gather_parts(
    part_paths: list,
    n_layers: int,
    n_cells: int = 0,
    cell_hist_path=None,
    cell_files: list | None = None,
    window_cells: int = 2048,
    cells: bool = True,
) -> dict[str, np.ndarray]:
    """Combine shard parts, reading them one at a time.

    Per-layer arrays are placed by their ``layer`` numbers (each layer exactly once);
    ``total__*`` arrays are summed (edges and pairs checked equal), ``min__*`` / ``max__*`` arrays
    combined by minimum / maximum. Fine cell histograms (ids in
    ``part__cell``; records in ``part__cell_counts`` or in the part's file of ``cell_files``) are
    added by cell id: with ``cell_hist_path`` into a ``(n_cells, d, fine_bins)`` uint32 ``.npy``
    written ``window_cells`` cells at a time (memory: one window, whatever the number of cells or
    shards), else into an in-memory array returned as ``cell_counts``.

    Parameters
    ----------
    part_paths : list of str or dict
        ``.npz`` parts (or the dicts of in-process runs).
    n_layers, n_cells : int
    cell_hist_path : str, optional
        Output ``.npy`` of the fine cell histograms (written completely; the caller renames it).
    cell_files : list of (str or None), optional
        Per part, the file holding its fine cell histogram records (hist pass ``cell_sink``).
    cells : bool
        False: leave the fine cell histograms out (rule ``gather_hist``; ``gather_cells`` writes them).

    Returns
    -------
    dict of gathered arrays (names without the ``total__`` prefix).
    """
    out: dict[str, np.ndarray] = {}
    seen = np.zeros(n_layers, np.int64)
    records = []  # per part: (ids, in-memory records or None, records file or None)
    fine_bins = 0
    for j, path in enumerate(part_paths):
        part = load_part(path) if isinstance(path, (str, os.PathLike)) else _MemoryPart(path)
        layer = part["layer"]
        if layer.size and (layer.min() < 0 or layer.max() >= n_layers):
            raise ValueError(f"{path}: layer numbers outside 0..{n_layers - 1}")
        seen[layer] += 1
        whole = layer.size == n_layers and bool((layer == np.arange(n_layers)).all())
        for name in part.files:
            if name in ("layer", "part__cell", "part__cell_counts"):
                continue
            arr = part[name]
            if name.startswith(TOTALS):
                _combine(out, name, arr, path)
            elif name not in out and whole:
                out[name] = np.asarray(arr)  # one part holding every layer in order: no copy
            else:
                if name not in out:
                    out[name] = np.zeros((n_layers,) + arr.shape[1:], arr.dtype)
                out[name][layer] = arr
        if cells and "part__cell" in part.files:
            ids = np.asarray(part["part__cell"], np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= n_cells):
                raise ValueError(f"{path}: cell ids outside 0..{n_cells - 1}")
            mem = part["part__cell_counts"] if "part__cell_counts" in part.files else None
            src = None if mem is not None else (cell_files[j] if cell_files else None)
            if mem is None and src is None and ids.size:
                raise ValueError(f"{path}: fine cell histograms are in a separate file: pass cell_files")
            records.append((ids, mem, src))
        part.close()
    if not np.all(seen == 1):
        bad = np.flatnonzero(seen != 1)
        raise ValueError(
            f"shards cover layer {int(bad[0])} {int(seen[bad[0]])} times; each of the "
            f"{n_layers} layers must be covered once ({bad.size} layers wrong)"
        )
    if records:
        fine_bins = int(out["cell_edges"].size - 1)
        width = int(out["counts"].shape[1])  # the coefficients per filter (d) of the coarse histograms
        if cell_hist_path is None:
            cells = np.zeros((n_cells, width, fine_bins), np.uint32)
            _add_records(cells, 0, n_cells, records, fine_bins)
            out["cell_counts"] = cells
        else:
            _write_cell_hist(cell_hist_path, n_cells, fine_bins, records, max(1, int(window_cells)), width)
    return out


def _add_records(buf: np.ndarray, c0: int, c1: int, records, fine_bins: int) -> None:
    """Add every record whose cell lies in ``[c0, c1)`` into ``buf`` (cells ``c0..c1-1``). A part
    may hold a cell more than once (one record per lane of its job): those are added one by one."""
    width = buf.shape[1]
    rec_bytes = width * fine_bins * 4
    for ids, mem, src in records:
        sel = np.flatnonzero((ids >= c0) & (ids < c1))
        if not sel.size:
            continue
        if mem is not None:
            _add_into(buf, ids[sel] - c0, mem[sel])
            continue
        with open(src, "rb") as fh:
            # runs of consecutive records: one read each
            cuts = np.flatnonzero(np.diff(sel) != 1) + 1
            for run in np.split(sel, cuts):
                fh.seek(int(run[0]) * rec_bytes)
                data = np.fromfile(fh, np.uint32, count=run.size * width * fine_bins)
                data = data.reshape(run.size, width, fine_bins)
                _add_into(buf, ids[run] - c0, data)


def _add_into(buf: np.ndarray, rows: np.ndarray, data: np.ndarray) -> None:
    """``buf[rows] += data``, also when ``rows`` repeats a row."""
    if np.unique(rows).size == rows.size:
        buf[rows] += data
    else:
        np.add.at(buf, rows, data)


def _write_cell_hist(path, n_cells: int, fine_bins: int, records, window: int, width: int) -> None:
    """Write the ``(n_cells, width, fine_bins)`` uint32 ``.npy`` window by window (file writes, no
    memory map: the job's memory is one window)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.dtype(np.uint32).str, "fortran_order": False, "shape": (n_cells, width, fine_bins)}
        )
        for c0 in range(0, n_cells, window):
            c1 = min(n_cells, c0 + window)
            buf = np.zeros((c1 - c0, width, fine_bins), np.uint32)
            _add_records(buf, c0, c1, records, fine_bins)
            buf.tofile(fh)


class _MemoryPart:
    """A part held in memory (in-process runs), read like a lazily loaded ``.npz``."""

    def __init__(self, arrays):
        self._a = arrays
        self.files = list(arrays)

    def __getitem__(self, name):
        return self._a[name]

    def close(self):
        pass


def _part_totals(part_paths: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the combined ``total__`` / ``min__`` / ``max__`` arrays ``names`` of the parts (each
    part opened lazily: the per-layer arrays are not read)."""
    out: dict[str, np.ndarray] = {}
    for path in part_paths:
        part = load_part(path) if isinstance(path, (str, os.PathLike)) else _MemoryPart(path)
        for name in names:
            if name not in part.files:
                raise ValueError(f"{path}: no {name!r} in this shard part (made by an older filterdb? rerun the pass)")
            _combine(out, name, np.asarray(part[name]), path)
        part.close()
    return out


def basis_from_parts(part_paths: list):
    """The global PCA from the sums parts alone (their exact sums): equal to
    :func:`filterdb.pca.global_pca` of the gathered sums, so a range or hist job need not wait
    for the gather.

    Parameters
    ----------
    part_paths : list of str or dict
        All sums parts.

    Returns
    -------
    filterdb.pca.PCA
    """
    from .pca import pca_from_limbs

    t = _part_totals(part_paths, ("total__count", "total__sum_limbs", "total__outer_limbs"))
    return pca_from_limbs(int(t["count"]), t["sum_limbs"], t["outer_limbs"])


def range_from_parts(part_paths: list) -> tuple[float, float]:
    """The shared coefficient range from the range parts alone (equal to
    :func:`coefficient_range` of the gathered ``cmin``/``cmax``)."""
    t = _part_totals(part_paths, ("min__coef_min", "max__coef_max"))
    return float(t["coef_min"]), float(t["coef_max"])


def coefficient_range(cmin: np.ndarray, cmax: np.ndarray) -> tuple[float, float]:
    """The shared range ``[min, max]`` over all coefficients of all layers."""
    return float(np.min(cmin)), float(np.max(cmax))


def _per_layer_bytes(bins: int, eps_grid: int = 0, fixed: bool = False, width: int = STUDY.size) -> dict[str, int]:
    """Bytes per layer of each pass's arrays for filters of ``width`` values (sums with the
    quality moments and ``eps_grid`` sparse counts; hist with the fixed-range histograms when
    ``fixed``)."""
    d = int(width)
    hist = 4 * d * bins + (4 * d * bins + 8 * d if fixed else 0)
    return {"sums": 8 * (1 + d + d * d + 2) + 8 * (6 + 2 * d * d) + 8 * eps_grid, "range": 8 * 2 * d, "hist": hist}


def estimate_mem_mb(
    kind: str,
    plan: Plan,
    *,
    shards: int = 1,
    threads: int = 1,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    bins: int = 70,
    fine_bins: int = 0,
    density_pairs: int = 0,
    density_bins: int = 512,
    row_bytes: int = ROW_BYTES,
    eps_grid: int = 0,
    fixed: bool = False,
) -> int:
    """Peak memory (MB, with a safety margin) of one job of ``kind`` on ``plan`` (``row_bytes``:
    bytes of one stored filter, 18/36/72 for 3x3 float16/32/64; ``eps_grid``: thresholds of the
    sparsity sweep; ``fixed``: fixed-range histograms too).

    ``kind`` is ``shard_sums``, ``shard_range``, ``shard_hist``, ``gather_sums``, ``gather_range``,
    ``gather_hist`` or ``gather_cells``. A shard job holds, per thread (lane), up to three read blocks
    (one being read, one queued, one being computed), its cells' fine histograms and 2-D
    histograms, plus its own layers' arrays; a gather holds every layer's arrays, one part and the
    touched pages of the cell histograms. The largest shard's need is returned for every shard.
    """
    base = 300.0  # Python, numpy, numba, h5py
    d = int(plan.width)
    if kind == "gather_cells":  # one window of cells, the records' ids
        return int((base + 2048 * 4 * d * fine_bins / 1e6 + 16 * plan.n_cells / 1e6) * 1.25) + 1
    per_layer = _per_layer_bytes(bins, eps_grid, fixed, d)
    p = kind.split("_", 1)[1]
    n_f = plan.n_filters
    L = plan.n_layers
    fine = 4 * d * fine_bins
    dens = 8 * density_pairs * density_bins**2
    if kind.startswith("shard"):
        mb = 0.0
        for lo, hi in plan_shards(n_f, shards):
            # per lane (thread): three read buffers of its block rows (or its largest layer) and
            # its own cells' fine histograms
            lanes = [(lo + a, lo + b) for a, b in plan_shards(n_f[lo:hi], max(1, threads)) if b > a]
            lb = lane_block_rows(block_rows, len(lanes))
            rows = [max(lb, int(n_f[a:b].max())) for a, b in lanes]
            cells = sum(np.unique(plan.cell[a:b][plan.cell[a:b] >= 0]).size for a, b in lanes)
            m = (3 * sum(rows) * row_bytes + (hi - lo) * per_layer[p]) / 1e6
            if p == "hist":
                m += (cells * fine + (len(lanes) + 1) * dens) / 1e6
            if p == "sums":
                m += max(rows, default=0) * d * 8 / 1e6  # moments of a layer holding NaN/Inf (drop policy)
            mb = max(mb, m)
        mb += base
    else:
        mb = base + 2 * L * per_layer[p] / 1e6
        if p == "hist":
            mb += 2 * dens / 1e6
    return int(mb * 1.25) + 1


def estimate_single_job_mb(
    filters: int,
    *,
    threads: int = 1,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    bins: int = 70,
    fine_bins: int = 0,
    density_pairs: int = 0,
    density_bins: int = 512,
    layers: int | None = None,
    filters_per_layer: int = 1000,
    row_bytes: int = ROW_BYTES,
    eps_grid: int = 0,
    fixed: bool = False,
    width: int = STUDY.size,
) -> int:
    """Peak memory (MB, with a safety margin) of the one-job path (rule ``analyse``), estimated
    before its layer plan exists from the DB's filter count and its number of ``layers``
    (:func:`filterdb.db.count_layers`; None: at least ``filters_per_layer`` filters per layer).
    The job holds the meta table, one pass's per-layer arrays at a time (and the small results of
    the earlier ones), the read buffers of its lanes, its lanes' open cells and 2-D histograms."""
    if layers is None:
        layers = int(filters) // max(1, filters_per_layer)
    layers = max(1, int(layers))
    d = int(width)  # values per filter
    per_layer = max(_per_layer_bytes(bins, eps_grid, fixed, d).values()) + 8 * 2 * d + 2000  # + the meta table's row
    mb = 400.0 + layers * per_layer / 1e6  # Python, pandas, numpy, h5py
    mb += 3 * max(block_rows, 1 << 16) * row_bytes / 1e6
    lanes = max(1, int(threads))
    mb += lanes * (256 * 4 * d * fine_bins + 8 * density_pairs * density_bins**2) / 1e6
    return int(mb * 1.25) + 1
