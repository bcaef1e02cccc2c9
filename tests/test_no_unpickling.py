"""No product code may unpickle a user's file outside the restricted unpicklers: no
``pandas.read_hdf`` / ``HDFStore`` / PyTables ``open_file`` (they unpickle object blocks and
attributes), no ``pickle.load(s)`` / ``Unpickler`` except in the two restricted decoders, no
``allow_pickle=True``. A source scan of the package, the workflow and the benchmarks."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    r"\bread_hdf\s*\(": "pandas.read_hdf unpickles object blocks",
    r"\bHDFStore\s*\(": "pandas.HDFStore unpickles object blocks",
    r"\bopen_file\s*\(": "PyTables unpickles attributes",
    r"allow_pickle\s*=\s*True": "numpy would unpickle object arrays",
    r"\bpickle\.loads?\s*\(": "unrestricted unpickling",
    r"\btorch\.load\s*\(": "torch.load unpickles",
}
# the restricted decoders themselves subclass pickle.Unpickler and may name it
ALLOWED = {"filterdb/h5safe.py", "filterdb/ingest/torch_reader.py"}


def _sources():
    for base in ("filterdb", "workflow", "benchmarks"):
        for p in sorted((ROOT / base).rglob("*")):
            if p.suffix in (".py", ".smk") or p.name == "Snakefile":
                yield p


def _code_lines(text):
    for i, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip() and not code.strip().startswith(('"', "'", "``")):
            yield i, code


def test_no_unrestricted_unpickling_in_product_code():
    found = []
    for p in _sources():
        rel = p.relative_to(ROOT).as_posix()
        text = p.read_text()
        for i, code in _code_lines(text):
            for pat, why in FORBIDDEN.items():
                if re.search(pat, code) and not (rel in ALLOWED and "pickle" in pat):
                    found.append(f"{rel}:{i}: {why}: {code.strip()}")
        if rel not in ALLOWED and re.search(r"\bUnpickler\b", text):
            found.append(f"{rel}: defines or uses an Unpickler outside the restricted decoders")
    assert found == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The patterns match the calls they are meant to catch (the scan above can fail)."""
    calls = ['pd.read_hdf(path, "meta")', "tables.open_file(p)", "np.load(p, allow_pickle=True)", "pickle.loads(b)"]
    for c in calls:
        assert any(re.search(pat, c) for pat in FORBIDDEN), c
