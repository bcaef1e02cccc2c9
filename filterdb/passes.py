"""The streamed passes: what one pass does with the read blocks of its layers.

Each pass owns the per-layer accumulators of the statistics it feeds (:mod:`filterdb.statistics`
declares them; a pass allocates them from there) for the layers ``[lo, hi)`` of one shard, and
hands every read block to one compiled kernel (:mod:`filterdb.kernels`) that loops over the
block's layers: no per-layer Python except for orthogonality (one BLAS product per layer) and the
Python ``block`` hooks of registered statistics the kernels do not compute. At the end its
statistics' ``finish`` gives the shard's part (:func:`filterdb.statistics.finish`). The drivers
that stream the rows and gather the parts are in :mod:`filterdb.accumulate`.

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
from dataclasses import dataclass, field

import numpy as np

from . import compiled, quality, scaling
from . import statistics as registry
from .cellhist import CellSink
from .histogram import uniform_edges
from .results import Plan
from .schema import default_factory, schema_default

PASSES = registry.PASSES
#: The per-layer quality arrays of the sums pass (:data:`filterdb.quality.FIELDS`).
QUALITY_FIELDS = quality.FIELDS


class NonFiniteError(ValueError):
    """Filters holding NaN or Inf, with the policy ``error``."""


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

    block_rows: int = field(default_factory=default_factory("stream.block_rows"))
    threads: int = 1
    precision: str = field(default_factory=default_factory("stream.precision"))
    nonfinite: str = field(default_factory=default_factory("stream.nonfinite"))
    quality_eps: float | None = None
    quality_eps_grid: tuple = ()
    orthogonality: bool = field(default_factory=default_factory("quality.orthogonality"))
    fine_bins: int = 0
    density_pairs: list = field(default_factory=list)
    density_bins: int = field(default_factory=default_factory("density.bins"))
    density_extent: tuple = field(default_factory=lambda: tuple(schema_default("density.extent")))
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


def pass_dims(settings: PassSettings, width: int, bins: int = 0) -> registry.Dims:
    """The sizes of the registry's arrays (:class:`filterdb.statistics.Dims`) for passes run with
    ``settings`` over filters of ``width`` values, with ``bins`` coarse histogram bins."""
    q = settings.quality_eps is not None
    return registry.Dims(
        d=int(width),
        bins=int(bins),
        eps=eps_grid(float(settings.quality_eps), settings.quality_eps_grid).size if q else 0,
        fine=max(int(settings.fine_bins), 0),
        pairs=len(settings.density_pairs),
        dbins=int(settings.density_bins),
        quality=q,
        fixed=fixed_range(settings.fixed_range) is not None,
    )


# ---------------------------------------------------------------------------------------------
# Passes: each owns its per-layer arrays for the layers [lo, hi) of one shard


class _Pass:
    kind = ""
    #: the per-layer accumulators (first axis = the pass's layers; :mod:`filterdb.statistics`):
    #: a lane writes its own slice of them
    per_layer: tuple[str, ...] = ()

    def __init__(self, plan: Plan, lo: int, hi: int, settings: PassSettings, width: int | None = None):
        self.plan, self.lo, self.hi, self.s = plan, lo, hi, settings
        self.k = hi - lo
        self.d = int(plan.width)  # values per filter (k²; filterdb.shape)
        self.drop = settings.nonfinite == "drop"
        self.prec = scaling.PRECISIONS[settings.precision]
        self.dims = pass_dims(settings, self.d if width is None else width, self._bins())
        self.hooks = [st for st in registry.statistics(self.kind, self.dims) if st.block is not None]

    def _bins(self) -> int:
        return 0

    def _allocate(self) -> None:
        """The pass's accumulators (:func:`filterdb.statistics.allocate`), as attributes."""
        acc = registry.allocate(self.kind, self.k, self.dims)
        for name, arr in acc.items():
            setattr(self, name, arr)
        self.per_layer = tuple(acc)

    @property
    def acc(self) -> dict[str, np.ndarray]:
        """The accumulators by name."""
        return {name: getattr(self, name) for name in self.per_layer}

    def _prec(self, x) -> int:
        """The kernels' ``prec`` for rows ``x``: rounding float32 or float16 rows to float32 changes
        nothing, so they are loaded as stored (the kernels skip that loop)."""
        return 2 if self.prec == 0 and x.dtype != np.float64 else self.prec

    def _values(self, x) -> np.ndarray:
        """The block's rows as float32 values (float16 rows, read as their bit patterns: their
        float32 values, exact), what orthogonality's float32 Gram is formed from."""
        if x.dtype == np.uint16:
            xv = np.empty(x.shape, np.float32)
            compiled.load().half_to_float32(x, xv)
            return xv
        return scaling.values(x, self.prec)

    def _hook_values(self, x) -> np.ndarray:
        """The block's rows for the Python hooks: as the kernels load them (float32; float64
        rows loaded as stored stay float64)."""
        return x if x.dtype == np.float64 and self._prec(x) == 2 else self._values(x)

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
        """The read block ``x`` (rows from ``a``) of the layers at local positions ``pos``: the
        pass's kernel, then the Python hooks of registered statistics."""
        self._kernel(x, a, pos)
        if self.hooks:
            ls, le = self._bounds(a, pos)
            xv, acc = self._hook_values(x), self.acc
            for st in self.hooks:
                st.block(xv, ls, le, pos, acc)

    def _kernel(self, x: np.ndarray, a: int, pos: np.ndarray) -> None:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The shard's part: its statistics' outputs (:func:`filterdb.statistics.finish`)."""
        return registry.finish(self.kind, self.acc, self, self.dims)

    def _bounds(self, a: int, pos: np.ndarray):
        g = self.lo + pos
        return self.plan.row_start[g] - a, self.plan.row_end[g] - a


class SumsPass(_Pass):
    kind = "sums"

    def __init__(self, plan, lo, hi, settings):
        super().__init__(plan, lo, hi, settings)
        self.quality = self.dims.quality
        if self.quality:
            self.eps_grid = eps_grid(float(settings.quality_eps), settings.quality_eps_grid)
        self._allocate()

    def _kernel(self, x, a, pos):
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
            self._orthogonality(self._values(x), ls, le, pos)

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


class RangePass(_Pass):
    kind = "range"

    def __init__(self, plan, lo, hi, settings, mean, components):
        self.mean = np.ascontiguousarray(mean, np.float64)
        self.comps = np.ascontiguousarray(components, np.float64)
        super().__init__(plan, lo, hi, settings, width=self.comps.shape[0])
        self._allocate()

    def _kernel(self, x, a, pos):
        ls, le = self._bounds(a, pos)
        k = compiled.load()
        k.range_block(x, ls, le, pos, self.drop, self._prec(x), self.mean, self.comps, self.cmin, self.cmax)


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
        self.mean = np.ascontiguousarray(mean, np.float64)
        self.comps = np.ascontiguousarray(components, np.float64)
        self.edges = np.ascontiguousarray(edges, np.float64)
        bins = self.edges.size - 1
        c = self.comps.shape[0]
        super().__init__(plan, lo, hi, settings, width=c)
        self.fixed = fixed_range(settings.fixed_range)
        self._allocate()  # counts; fixed_counts, fixed_outside with a fixed range
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
        self.own_sink = isinstance(cell_sink, (str, os.PathLike))  # else a shared sink (lanes, cellhist.CellHistFile)
        self.sink = CellSink(cell_sink) if self.own_sink else cell_sink
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
        if self.fixed is not None:
            self.xedges = uniform_edges(*self.fixed, bins)
        else:  # empty arrays for the kernel
            self.xedges = np.zeros(1)
            self.fixed_counts = np.zeros((0, c, 1), np.uint32)
            self.fixed_outside = np.zeros((0, c), np.int64)

    def _bins(self) -> int:
        return self.edges.size - 1

    def lane(self, lo, hi):
        sub = HistPass(self.plan, lo, hi, self.s, self.mean, self.comps, self.edges, cell_sink=self.sink)
        a, b = lo - self.lo, hi - self.lo
        for name in self.per_layer:
            setattr(sub, name, getattr(self, name)[a:b])
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

    def _kernel(self, x, a, pos):
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
        out = super().arrays()
        if self.own_sink:
            self.sink.close()
        return out

    def cell_outputs(self) -> dict[str, np.ndarray]:
        """The fine cell histograms' outputs (statistic ``cell_histograms``): the closed cells'
        ids in record order, the fine edges and, without a sink, the records themselves."""
        closed = self.sink.ids if self.sink is not None else self.closed_ids
        ids = np.concatenate(closed) if closed else np.zeros(0, np.int64)
        out = {"cell": ids, "cell_edges": self.fedges}
        if self.sink is None:
            out["cell_counts"] = (
                np.concatenate(self.closed_mem) if self.closed_mem else np.zeros((0,) + self.pool.shape[1:], np.uint32)
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
