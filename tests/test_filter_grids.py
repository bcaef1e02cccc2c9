"""Filter grids (filterdb.grids, plots.filter_grid, rule filter_grids): the tiles drawn are the DB
rows the tables name, scaled as the analysis scales them; the choice of rows is seeded, uniform,
inside each group's layers and independent of the other groups. Every check compares with a plain
computation here (h5py read of the whole small array, numpy scaling, pandas counts)."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("matplotlib")

from filterdb import grids, plots, results, scaling  # noqa: E402
from filterdb.axes import axes_from_config, group_table, layer_labels  # noqa: E402
from filterdb.db import open_db  # noqa: E402
from filterdb.pca import PIXELS  # noqa: E402
from filterdb.synth import write_synth_db  # noqa: E402
from tests.conftest import DEFAULT_AXES, load_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AXES = axes_from_config(DEFAULT_AXES)


# ---------------------------------------------------------------------------------------------
# helpers: plain computations


def plain_scale(x64: np.ndarray, precision: str) -> np.ndarray:
    """Peak scaling as docs/method.md §1 states it, from the stored values (given as float64)."""
    if precision == "float16":  # the study's notebook cells
        d = x64.astype(np.float16)
        peak = np.abs(d).max(axis=1)[:, None]
        peak[peak == 0] = 1
        return (d / peak).astype(np.float64)
    v = x64.astype(np.float32).astype(np.float64) if precision == "float32" else x64
    peak = np.abs(v).max(axis=1)[:, None]
    peak[peak == 0] = 1
    return v / peak


def axis_inputs(layers: pd.DataFrame, names=None) -> dict:
    """Axis name → (Axis, groups table) as the workflow makes them (filterdb.axes)."""
    out = {}
    for ax in AXES:
        if names is None or ax.name in names:
            out[ax.name] = (ax, group_table(layers, layer_labels(layers, ax), ax))
    return out


def all_grids(path, precision="float16", **kw):
    db = open_db(path)
    settings = grids.GridSettings(precision=precision, **kw)
    by_axis, model = grids.filter_grids(db, db.layers, axis_inputs(db.layers), settings)
    return db, by_axis, model


def figure_tiles(fig, counts) -> list[np.ndarray]:
    """The tiles of a filter_grid figure, read back from its AxesImage: per row (k, 9)."""
    (im,) = fig.axes[0].images
    img = np.ma.getdata(im.get_array())
    return [
        np.array([plots.tile_block(img, g, j).reshape(9) for j in range(k)]).reshape(k, 9) for g, k in enumerate(counts)
    ]


def write_with_dtype(src: str, dst: Path, dtype: str, seed: int = 5) -> np.ndarray:
    """A copy of the DB ``src`` whose filters are new random values stored as ``dtype``
    (float16 ties and float32 double-rounding cases happen among many float64 values)."""
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        key = "filters" if "filters" in f else "filter"
        shape = f[key].shape
        del f[key]
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal((shape[0], 9)) * 10.0 ** rng.integers(-3, 1, (shape[0], 1))).astype(dtype)
        x[rng.random(shape[0]) < 0.02] = 0  # dead filters: divided by 1
        f.create_dataset(key, data=x.reshape(shape), chunks=(min(4096, shape[0]),) + shape[1:])
    return x.astype(np.float64).reshape(-1, 9)


# ---------------------------------------------------------------------------------------------
# tiles = the DB rows the table names = a plain read


def check_grid(grid, x64, layers, precision, per_group, axis=None):
    tab = grid.table
    assert list(tab.columns) == grids.GRID_COLUMNS
    # the table: the scaled DB rows it names (plain h5py read of the whole array + numpy scaling)
    rows = tab["row"].to_numpy(np.int64)
    want = plain_scale(x64[rows], precision)
    got = tab[PIXELS].to_numpy(np.float64)
    assert np.array_equal(got, want, equal_nan=True)
    # the figure: its tiles are the table's values, row by row
    counts = [int((tab["group"] == g).sum()) for g in grid.selection.groups]
    fig = plots.filter_grid(grid.tiles, grid.labels(), title="t")
    shown = figure_tiles(fig, counts)
    for g, tiles in zip(grid.selection.groups, shown):
        assert np.array_equal(tiles, tab.loc[tab["group"] == g, PIXELS].to_numpy(np.float64))
    # every row lies in a layer of its group (the layer found from the row ranges, not the table)
    s, e = layers["row_start"].to_numpy(), layers["row_end"].to_numpy()
    full = np.flatnonzero(e > s)
    pos = full[np.searchsorted(s[full], rows, side="right") - 1]
    assert np.all((s[pos] <= rows) & (rows < e[pos]))
    assert np.array_equal(layers["layer"].to_numpy()[pos], tab["layer"].to_numpy())
    assert np.array_equal(layers["conv_depth"].to_numpy()[pos], tab["conv_depth"].to_numpy())
    if axis is not None:
        lab = layer_labels(layers, axis).astype(object).to_numpy()[pos]
        assert [str(v) for v in lab] == tab["group"].tolist()
    # per group: min(per_group, its filters) distinct rows, ascending
    for g in grid.selection.groups:
        r = tab.loc[tab["group"] == g, "row"].to_numpy()
        assert np.all(np.diff(r) > 0)
        if axis is not None:
            in_group = layer_labels(layers, axis).astype(object).map(lambda v: str(v) if v == v else None) == g
            n = int(layers.loc[in_group.to_numpy(), "n_filters"].sum())
            assert r.size == min(per_group, n)


@pytest.mark.parametrize("precision", ["float32", "float16", "float64"])
def test_tiles_are_the_scaled_db_rows(synth_db, precision):
    """Both layouts ((N, 9) v1.0, (N, 3, 3) v0.1), float32 DBs, every precision."""
    layout, path, _ = synth_db
    x64, _ = load_all(path)
    db, by_axis, model = all_grids(path, precision, per_group=7, per_layer=5)
    assert set(by_axis) == {a.name for a in AXES}
    for ax in AXES:
        check_grid(by_axis[ax.name], x64, db.layers, precision, 7, ax)
        groups = group_table(db.layers, layer_labels(db.layers, ax), ax)
        assert by_axis[ax.name].selection.groups == groups["group"].astype(str).tolist()  # = groups/{axis}.tsv
    check_grid(model, x64, db.layers, precision, 5)


@pytest.mark.parametrize("dtype,precision", [("float64", "float16"), ("float64", "float32"), ("float16", "float16")])
def test_other_stored_dtypes(synth_db, tmp_path, dtype, precision):
    """float64 DBs (float16 mode rounds straight to float16, not through float32) and float16
    DBs, in both layouts."""
    layout, path, _ = synth_db
    dst = tmp_path / f"{dtype}.h5"
    x64 = write_with_dtype(path, dst, dtype)
    db, by_axis, model = all_grids(str(dst), precision, per_group=40)
    assert db.dtype == dtype
    for ax in AXES:
        check_grid(by_axis[ax.name], x64, db.layers, precision, 40, ax)
    check_grid(model, x64, db.layers, precision, 16)
    if dtype == "float64" and precision == "float16":  # the case this is about: not via float32
        rows = np.concatenate([g.table["row"].to_numpy() for g in by_axis.values()])
        via32 = x64[rows].astype(np.float32).astype(np.float16)
        assert (via32 != x64[rows].astype(np.float16)).any() or rows.size < 50


@pytest.mark.parametrize("kind", ["gzip", "big-endian", "contiguous"])
def test_other_storage_layouts(synth_db, tmp_path, kind):
    """Compressed and big-endian filter arrays (read through h5py) and a contiguous one (read
    straight from the file) give the same tiles as a plain read."""
    _, path, _ = synth_db
    dst = tmp_path / f"{kind}.h5"
    x64 = write_with_dtype(path, dst, "float32")
    with h5py.File(dst, "a") as f:
        key = "filters" if "filters" in f else "filter"
        x = f[key][...]
        del f[key]
        if kind == "gzip":
            f.create_dataset(key, data=x, chunks=(1000,) + x.shape[1:], compression="gzip")
        elif kind == "big-endian":
            f.create_dataset(key, data=x.astype(">f4"))
        else:
            f.create_dataset(key, data=x)
    from filterdb.stream import BlockReader

    with BlockReader(str(dst), "filters" if "filters" in h5py.File(dst, "r") else "filter") as rd:
        assert rd.mode == ("contiguous" if kind == "contiguous" else "h5py")
    db, by_axis, model = all_grids(str(dst), "float16", per_group=5)
    for ax in AXES[:3]:
        check_grid(by_axis[ax.name], x64, db.layers, "float16", 5, ax)
    check_grid(model, x64, db.layers, "float16", 16)


def test_reading_touches_only_the_chosen_rows(synth_db, tmp_path, monkeypatch):
    """Chunked uncompressed data: one read per run of consecutive rows, of exactly their bytes
    (h5py would read each chunk it touches whole)."""
    from filterdb import stream

    _, path, _ = synth_db
    db = open_db(path)
    reads = []
    orig = stream.BlockReader._pread
    monkeypatch.setattr(
        stream.BlockReader, "_pread", lambda self, buf, off: reads.append(len(buf)) or orig(self, buf, off)
    )
    rows = np.array([3, 4, 5, 100, 2000, 2001, db.n_rows - 1])
    x = grids.read_rows(db, rows)
    x64, _ = load_all(path)
    assert np.array_equal(x.astype(np.float64), x64[rows])
    assert sorted(reads) == sorted([3 * 36, 36, 2 * 36, 36])


def test_scaling_is_the_analysis(synth_db):
    """Scaled as the pass kernels scale: the per-layer sums of scaling.scale_as over all of a
    layer's rows equal the analysis's per-layer sums (stats/sums.npz 'sum') to rounding."""
    from filterdb import pipeline

    _, path, _ = synth_db
    x64, _ = load_all(path)
    for precision in ("float32", "float16"):
        a = pipeline.analyse(path, AXES[:1], precision=precision, progress=False)
        lay = a.db.layers
        for k in range(0, len(lay), max(1, len(lay) // 10)):
            s, e = int(lay["row_start"][k]), int(lay["row_end"][k])
            mine = scaling.scale_as(x64[s:e].astype(np.float32), precision).sum(axis=0)
            np.testing.assert_allclose(mine, a.sums["sum"][k], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the choice of rows


def test_same_seed_same_files_other_seed_other_rows(synth_db, tmp_path):
    _, path, _ = synth_db
    out = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        _, by_axis, model = all_grids(path, seed=seed)
        files = {}
        for name, g in [*by_axis.items(), ("model", model)]:
            tsv, svg = tmp_path / f"{run}_{name}.tsv", tmp_path / f"{run}_{name}.svg"
            results.write_tsv(g.table, tsv)
            plots.save(plots.filter_grid(g.tiles, g.labels(), title=name), svg)
            files[name] = (tsv.read_bytes(), svg.read_bytes())
        out[run] = files
    assert out["a"] == out["b"]
    for name in out["a"]:
        assert out["a"][name][0] != out["c"][name][0], name  # other rows


def test_a_groups_picks_do_not_depend_on_other_groups(synth_db):
    """Removing a group from the groups table, or all layers of another group from the layer
    table, leaves every other group's rows as they were."""
    _, path, _ = synth_db
    db = open_db(path)
    layers = db.layers
    for ax in AXES:
        groups = group_table(layers, layer_labels(layers, ax), ax)
        if len(groups) < 2:
            continue
        full = grids.select_axis(layers, ax, groups, 9, 3)
        gone = str(groups["group"].iloc[0])
        fewer = grids.select_axis(layers, ax, groups.iloc[1:], 9, 3)
        assert fewer.groups == full.groups[1:]
        for a, b in zip(full.rows[1:], fewer.rows):
            assert np.array_equal(a, b)
        keep = np.array([v != gone for v in layer_labels(layers, ax).astype(object).map(str)])
        less = grids.select_axis(layers[keep].reset_index(drop=True), ax, groups.iloc[1:], 9, 3)
        for a, b in zip(full.rows[1:], less.rows):
            assert np.array_equal(a, b)


def test_floyd_sample_is_uniform_and_size_free():
    """Every k-subset equally likely (each element with probability k/n, each pair k(k-1)/(n(n-1)));
    a sample of a huge population costs O(k)."""
    n, k, reps = 8, 3, 20000
    hits = np.zeros(n)
    pairs = np.zeros((n, n))
    for r in range(reps):
        s = grids.floyd_sample(n, k, grids.generator(r, "u"))
        assert s.size == k and np.all(np.diff(s) > 0) and s.min() >= 0 and s.max() < n
        hits[s] += 1
        pairs[np.ix_(s, s)] += 1
    p = k / n
    assert np.all(np.abs(hits / reps - p) < 4 * np.sqrt(p * (1 - p) / reps))
    q = k * (k - 1) / (n * (n - 1))
    off = pairs[~np.eye(n, dtype=bool)] / reps
    assert np.all(np.abs(off - q) < 5 * np.sqrt(q * (1 - q) / reps))
    big = grids.floyd_sample(10**15, 16, grids.generator(0, "big"))
    assert big.size == 16 and np.unique(big).size == 16 and big.max() < 10**15
    assert grids.floyd_sample(5, 9, grids.generator(0, "x")).tolist() == [0, 1, 2, 3, 4]
    assert grids.floyd_sample(0, 3, grids.generator(0, "x")).size == 0


def test_draw_rows_spans_layers_with_gaps_and_empty_layers():
    starts, ends = np.array([0, 10, 10, 50]), np.array([4, 10, 13, 52])  # rows 4..9, 13..49 in no layer
    member = np.concatenate([np.arange(0, 4), np.arange(10, 13), np.arange(50, 52)])
    seen = set()
    for r in range(300):
        rows, which = grids.draw_rows(starts, ends, 4, grids.generator(r, "d"))
        assert np.all(np.isin(rows, member)) and np.all(np.diff(rows) > 0)
        assert np.all((starts[which] <= rows) & (rows < ends[which]))
        seen |= set(rows.tolist())
    assert seen == set(member.tolist())


def test_model_grid_goes_down_the_depth(synth_db):
    _, path, _ = synth_db
    db = open_db(path)
    layers = db.layers
    full = layers[layers["n_filters"] > 0]
    count = full.groupby("model").size()
    best = sorted(count[count == count.max()].index)[0]  # most layers; ties: first name
    assert grids.choose_model(layers) == best
    sel = grids.select_model(layers, best, 4, 10**6, 0)
    own = full[full["model"] == best].sort_values(["conv_depth", "row_start"])
    assert [int(lay[0]) for lay in sel.layers] == own["layer"].tolist()  # every layer, depth order
    assert sel.groups[0].startswith(f"conv 1/{len(own)}, depth ")
    # at most max_layers, evenly spaced, first and last kept, still in depth order
    m = max(2, len(own) // 2)
    few = grids.select_model(layers, best, 4, m, 0)
    picked = [int(lay[0]) for lay in few.layers]
    assert len(picked) == m and picked[0] == own["layer"].iloc[0] and picked[-1] == own["layer"].iloc[-1]
    depth = own.set_index("layer").loc[picked, "conv_depth"].to_numpy()
    assert np.all(np.diff(depth) >= 0)
    assert few.rows[0].tolist() == sel.rows[0].tolist()  # a layer's picks: its seed is its place
    # the named model; an unknown name is one clear line
    other = sorted(count.index)[-1]
    shown = np.concatenate(grids.select_model(layers, other, 2, 3, 0).layers)
    assert set(layers.set_index("layer").loc[shown, "model"]) == {other}
    assert grids.choose_model(layers, other) == other
    with pytest.raises(ValueError, match="grids.model 'no-such-model' is not a model"):
        grids.choose_model(layers, "no-such-model")


def test_defaults_equal_schema():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    g = schema["properties"]["grids"]["properties"]
    assert set(g) == {"enabled", "axes", "per_group", "model", "per_layer", "max_layers", "seed"}
    assert all("default" in v and "description" in v for v in g.values())
    d = grids.GridSettings()
    assert {k: g[k]["default"] for k in ("per_group", "model", "per_layer", "max_layers", "seed")} == {
        "per_group": d.per_group,
        "model": d.model,
        "per_layer": d.per_layer,
        "max_layers": d.max_layers,
        "seed": d.seed,
    }
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["grids"]
    assert {k: cfg[k] for k in g} == {k: g[k]["default"] for k in g}  # config.yaml shows the defaults


def test_read_rows_refuses_unsorted_or_outside(synth_db):
    _, path, _ = synth_db
    db = open_db(path)
    with pytest.raises(ValueError, match="sorted, distinct"):
        grids.read_rows(db, [5, 3])
    with pytest.raises(ValueError, match="sorted, distinct"):
        grids.read_rows(db, [db.n_rows])
    assert grids.read_rows(db, []).shape == (0, 9)


# ---------------------------------------------------------------------------------------------
# the workflow rule


def test_workflow_grids_equal_the_library(tmp_path):
    import shutil

    if shutil.which("snakemake") is None:
        pytest.skip("snakemake not installed")
    from filterdb.settings import load_config
    from tests.test_workflow import run_workflow

    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=2, n_models=6)
    res = tmp_path / "res"
    names = [a.name for a in AXES] + ["model"]
    targets = [str(res / f"figures/filter_grid_{n}.{e}") for n in names for e in ("svg", "png")]
    targets += [str(res / f"grids/{n}.tsv") for n in names]
    run = run_workflow(tmp_path, db, res, targets=targets)
    assert run.returncode == 0, run.stderr[-3000:]
    for t in targets:
        assert Path(t).stat().st_size > 0, t
    log = (res / "logs/figures/filter_grids.log").read_text()
    assert "filter rows read by row" in log
    cfg = load_config(ROOT / "config.yaml")
    settings = grids.GridSettings.from_config(cfg["grids"], cfg["stream"]["precision"])
    layers = results.read_layers(res / "stats/layers.tsv")
    axes = {a.name: (a, results.read_groups(res / f"groups/{a.name}.tsv")) for a in AXES}
    by_axis, model = grids.filter_grids(str(db), layers, axes, settings)
    x64, _ = load_all(db)
    for name, g in [*by_axis.items(), ("model", model)]:
        got = results.read_tsv(res / f"grids/{name}.tsv", group_names=True)
        assert got["group"].tolist() == g.table["group"].tolist()
        assert np.array_equal(got["row"].to_numpy(), g.table["row"].to_numpy())
        assert np.array_equal(got[PIXELS].to_numpy(), g.table[PIXELS].to_numpy())  # %.17g round-trips
        assert np.array_equal(got[PIXELS].to_numpy(), plain_scale(x64[got["row"].to_numpy()], settings.precision))
        # the SVG is the library's figure, byte for byte
        mine = tmp_path / f"mine_{name}.svg"
        columns = settings.per_layer if name == "model" else settings.per_group
        plots.save(plots.filter_grid(g.tiles, g.labels(), columns=columns, title=g.selection.title), mine)
        assert mine.read_bytes() == (res / f"figures/filter_grid_{name}.svg").read_bytes(), name
    # the grids are part of the default targets (grids.enabled); grids.axes picks the axes
    dry = run_workflow(tmp_path, db, res, "-n", "--forceall", targets=[])
    assert dry.returncode == 0 and "filter_grids" in dry.stdout, dry.stderr[-2000:]
    text = (ROOT / "config.yaml").read_text()
    assert text.count("\ngrids:\n") == 1 and text.split("\ngrids:\n")[1].startswith("  enabled: true ")
    head, tail = text.split("\ngrids:\n")
    cfg = tmp_path / "grids-off.yaml"  # a nested boolean cannot be set with --config
    cfg.write_text(head + "\ngrids:\n" + tail.replace("  enabled: true ", "  enabled: false ", 1))
    off = run_workflow(tmp_path, db, res, "-n", "--forceall", "--configfile", str(cfg), targets=[])
    assert off.returncode == 0 and "filter_grids" not in off.stdout, off.stderr[-2000:]
    two = run_workflow(tmp_path, db, res, "grids={'axes': ['task', 'depth']}", "-n", "--forceall", targets=[])
    assert two.returncode == 0 and "filter_grid_task.svg" in two.stdout, two.stderr[-2000:]
    assert "filter_grid_depth.svg" in two.stdout and "filter_grid_architecture.svg" not in two.stdout
    bad = run_workflow(tmp_path, db, res, "grids={'axes': ['task', 'nope']}", "-n", targets=[])
    assert bad.returncode != 0
    assert "config grids/axes: 'nope' is not an axis of the axes mapping" in bad.stdout + bad.stderr
