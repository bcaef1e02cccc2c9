"""filterdb: streaming, exact analysis of trained convolution filters (CNN-Filter-DB study: 3x3;
any odd k x k).

The public API, by layer (docs/method.md has the math; README "Development" the layering):

* base: :mod:`filterdb.shape` (the kernel shape, named once), :mod:`filterdb.schema` (the config
  schema: the one place of every default; functions called without a config keyword read it here)
* I/O: :mod:`filterdb.db` (``open_db``, ``layer_table``, ``write_db``), :mod:`filterdb.ingest`
  (``build``: filter DBs from model files)
* math: :mod:`filterdb.scaling`, :mod:`filterdb.histogram`, :mod:`filterdb.pca`,
  :mod:`filterdb.divergence` (``drift``, ``drift_matrix``), :mod:`filterdb.axes`,
  :mod:`filterdb.quality`, :mod:`filterdb.kde`
* results layout: :mod:`filterdb.results` (``Paths``, readers, writers, ``Plan``),
  :mod:`filterdb.statistics` (the registry of per-layer statistics), :mod:`filterdb.settings`
* passes: :mod:`filterdb.stream` (``BlockReader``), :mod:`filterdb.passes` (the pass classes,
  ``PassSettings``), :mod:`filterdb.cellhist` (cell-histogram files), :mod:`filterdb.memory` (job
  memory estimates), :mod:`filterdb.accumulate` (``run_shard``, ``gather_parts``)
* steps: :mod:`filterdb.pipeline` (``analyse``: the whole analysis in one process)
* analyses and figures: :mod:`filterdb.uncertainty`, :mod:`filterdb.subsets`, :mod:`filterdb.grids`
  (example filters), :mod:`filterdb.paper` (the published values beside a run's), :mod:`filterdb.plots`,
  :mod:`filterdb.inspect`

Submodules are imported on use (``from filterdb import pipeline``), so that importing the package
stays cheap for the workflow's small jobs.
"""

__all__ = [
    "accumulate",
    "axes",
    "db",
    "divergence",
    "grids",
    "histogram",
    "ingest",
    "inspect",
    "kde",
    "paper",
    "pca",
    "pipeline",
    "plots",
    "provenance",
    "quality",
    "quality_tables",
    "results",
    "scaling",
    "settings",
    "stream",
    "subsets",
    "uncertainty",
]
