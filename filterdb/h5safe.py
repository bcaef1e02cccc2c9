"""Read an untrusted HDF5 DB file without running code from it or reading any other file.

A filter DB is a file a user downloads or receives from a colleague. Two things in the HDF5/pandas
stack would let such a file do more than hold data, and both are closed here:

* **Pickles.** pandas stores object columns (and object index levels) of its "fixed" format as
  pickles, and PyTables unpickles any string attribute that ends in ``"."``; ``pandas.read_hdf``
  therefore runs whatever callable a file names. This module reads the pandas layouts with h5py
  and decodes pickles with :class:`PlainUnpickler`, which can build only plain data: numpy arrays
  of str/bytes/int/float/bool/object, lists, tuples, dicts, sets, str, bytes, numbers, None. A
  pickle asking for any other callable gets an inert marker instead (nothing is imported, nothing
  is called), and the read stops with one line naming the node and the callable.
* **Other files.** HDF5 can store a dataset's bytes in an external raw file, map a virtual dataset
  onto other files, follow external links and load filter plugins from a search path.
  :func:`check_link` and :func:`check_dataset` refuse all of these before any data is read.

:func:`read_pandas_frame` reads a DataFrame stored with ``DataFrame.to_hdf`` (fixed and table
formats, plain or MultiIndex) exactly as ``pandas.read_hdf`` would on benign files (tested), and
:func:`crash_check` opens a file in a forked child first, so that damage which crashes the HDF5
library itself is reported as one line instead of killing the caller.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import signal

import h5py
import numpy as np
import pandas as pd

REFUSE = "refusing to run code from a DB file"
OUTSIDE = "refusing to read files outside the DB"
OUTSIDE_FILE = "refusing to read other files through it"
#: HDF5 filters that are built into the library or into h5py (deflate, shuffle, fletcher32, szip,
#: n-bit, scale-offset, h5py's LZF). Any other filter would make HDF5 load a plugin library from
#: its search path: refused.
BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}
#: The largest uncompressed size a meta node may declare, as a multiple of the file's size: a
#: genuine meta table is a small part of a DB; a node declaring far more than the file holds
#: (chunks never written read as zeros) would only exhaust memory.
META_SIZE_FACTOR = 64
MAX_DEPTH = 32
_PLAIN_KINDS = "biufcUSO"


class UnsafeFile(ValueError):
    """A file that asks for code to run or for another file to be read (message is one line)."""


class _Refused(Exception):
    """Internal: a refused callable found while decoding one pickle (position: flat index)."""

    def __init__(self, name: str, called: bool, position: int | None = None):
        super().__init__(name)
        self.name, self.called, self.position = name, called, position

    def what(self) -> str:
        return f"a pickled {self.name} {'call' if self.called else 'reference'}"


# ---------------------------------------------------------------------------------------------
# The restricted unpickler


class _Ref:
    """An inert stand-in for a callable a pickle asked for: calling it builds another stand-in,
    setting its state does nothing. Never imported, never run."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        return _Call(self.name)

    def __setstate__(self, state):
        pass


class _Call(_Ref):
    __slots__ = ()


class _NdarrayClass:
    """Stands for ``numpy.ndarray`` inside a pickle: only :func:`_reconstruct` accepts it; it
    cannot be called (a pickle calling ``ndarray(shape)`` could allocate any size)."""

    __slots__ = ()


_NDARRAY = _NdarrayClass()


class _Dtype:
    """A numpy dtype as a pickle describes it, made real (and checked) only when an array is built."""

    __slots__ = ("spec", "order", "elsize")

    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or len(spec) > 16:
            raise pickle.UnpicklingError(f"dtype {spec!r} is not a plain dtype")
        self.spec, self.order, self.elsize = spec, None, -1

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 8:
            raise pickle.UnpicklingError("malformed dtype state")
        if state[2] is not None or state[3] is not None or state[4] is not None:
            raise pickle.UnpicklingError("structured or sub-array dtypes are not plain data")
        if state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"dtype byte order {state[1]!r}")
        self.order, self.elsize = state[1], int(state[5])

    def real(self) -> np.dtype:
        try:
            dt = np.dtype(self.spec)
        except TypeError:
            raise pickle.UnpicklingError(f"dtype {self.spec!r} is not a plain dtype") from None
        if dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
            raise pickle.UnpicklingError(f"dtype {self.spec!r} is not a plain dtype")
        if dt.kind in "US" and self.elsize > 0:  # numpy pickles the size in the state
            dt = np.dtype(f"{dt.kind}{self.elsize // (4 if dt.kind == 'U' else 1)}")
        if self.order in ("<", ">") and dt.kind != "O":
            dt = dt.newbyteorder(self.order)
        return dt


class _Array:
    """An ndarray being unpickled (``_reconstruct`` then ``__setstate__``); built by :func:`_resolve`."""

    __slots__ = ("state",)

    def __init__(self):
        self.state = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed ndarray state")
        self.state = state[1:] if len(state) == 5 else state


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("ndarray subclasses are not plain data")
    return _Array()


def _shape(shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > 8 or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"array shape {shape!r}")
    return shape


def _buffer_array(data, dt: np.dtype, shape, fortran: bool) -> np.ndarray:
    if dt.kind == "O":
        raise pickle.UnpicklingError("an object array from raw bytes is not plain data")
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("array data is not bytes")
    n = int(np.prod(shape, dtype=np.int64))
    if len(data) != n * dt.itemsize:
        raise pickle.UnpicklingError(f"array data of {len(data)} bytes for shape {shape} of {dt}")
    return np.frombuffer(bytes(data), dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


def _frombuffer(buf, dtype, shape, order):
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("_frombuffer without a plain dtype")
    return _buffer_array(buf, dtype.real(), _shape(shape), order == "F")


def _scalar(dtype, data=None):
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("scalar without a plain dtype")
    dt = dtype.real()
    if dt.kind == "O":
        raise pickle.UnpicklingError("object scalars are not plain data")
    return _buffer_array(data, dt, (1,), False)[0]


def _codecs_encode(obj, encoding="utf-8"):
    """``_codecs.encode(str, 'latin1')``: how protocol-2 pickles store bytes."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode of something other than latin1 text")
    return obj.encode("latin1")


_ALLOWED = {}
for _m in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_m, "_reconstruct")] = _reconstruct
    _ALLOWED[(_m, "scalar")] = _scalar
for _m in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_m, "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = _NDARRAY
_ALLOWED[("numpy", "dtype")] = _Dtype
_ALLOWED[("_codecs", "encode")] = _codecs_encode
for _name in ("set", "frozenset"):  # protocol < 4 rebuilds these by name (from an iterable only)
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only: every global a pickle names is looked up in a
    fixed table of numpy array/dtype/scalar builders (replaced by checked stand-ins); anything else
    becomes an inert :class:`_Ref` and is reported by :func:`loads_plain`."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.refused: list[str] = []

    def find_class(self, module, name):
        got = _ALLOWED.get((module, name))
        if got is not None:
            return got
        self.refused.append(f"{module}.{name}")
        return _Ref(f"{module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not plain data")


_SCALARS = (str, bytes, int, float, complex, bool, type(None), np.generic)


def _resolve(obj, depth: int = 0):
    """The plain object a decoded pickle stands for: stand-ins built into real arrays, refused
    stand-ins raised as :class:`_Refused` (with the flat position inside an object array)."""
    if depth > MAX_DEPTH:
        raise pickle.UnpicklingError(f"data nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, _Ref):
        raise _Refused(obj.name, isinstance(obj, _Call))
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _PLAIN_KINDS.replace("O", ""):
            raise pickle.UnpicklingError(f"numpy scalar of dtype {obj.dtype}")
        return obj
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, bytearray):
        return bytes(obj)
    if isinstance(obj, list | tuple | set | frozenset):
        items = [_resolve(v, depth + 1) for v in obj]
        return type(obj)(items)
    if isinstance(obj, dict):
        return {_resolve(k, depth + 1): _resolve(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):  # from _frombuffer: plain by construction
        return obj
    if isinstance(obj, _Array):
        if obj.state is None:
            raise pickle.UnpicklingError("an ndarray without data")
        shape, dtype, fortran, data = obj.state
        shape = _shape(shape)
        if not isinstance(dtype, _Dtype):
            raise pickle.UnpicklingError("an ndarray without a plain dtype")
        dt = dtype.real()
        if dt.kind != "O":
            return _buffer_array(data, dt, shape, bool(fortran))
        n = int(np.prod(shape, dtype=np.int64))
        if not isinstance(data, list) or len(data) != n:
            raise pickle.UnpicklingError(f"object array data for shape {shape}")
        out = np.empty(n, dtype=object)
        for i, v in enumerate(data):
            try:
                out[i] = _resolve(v, depth + 1)
            except _Refused as exc:
                if exc.position is None:
                    exc.position = i
                raise
        # numpy pickles an object array's items in C order whatever its memory order
        return out.reshape(shape)
    raise pickle.UnpicklingError(f"{type(obj).__name__} objects are not plain data")


def loads_plain(data: bytes):
    """Decode a pickle that may only hold plain data.

    Parameters
    ----------
    data : bytes
        The pickle.

    Returns
    -------
    object
        Plain data: numpy arrays and scalars of bool/int/float/complex/str/bytes (object arrays of
        plain data), str, bytes, numbers, None, and lists/tuples/sets/dicts of these.

    Raises
    ------
    _Refused
        The pickle names a callable other than numpy's array builders (its ``name``, whether it is
        called, and its flat position when it sits inside an object array). Nothing was run.
    pickle.UnpicklingError
        Not a pickle of plain data (malformed, or a structure this decoder does not build).
    """
    u = PlainUnpickler(bytes(data))
    try:
        obj = u.load()
    except _Refused:
        raise
    except Exception as exc:
        if u.refused:
            raise _Refused(u.refused[0], True) from None
        raise pickle.UnpicklingError(f"{type(exc).__name__}: {exc}") from None
    return _resolve(obj)


# ---------------------------------------------------------------------------------------------
# Links, storage, attributes


def check_link(parent: h5py.Group, name: str, path: str, where: str | None = None):
    """The object ``parent[name]``, after checking that reaching it reads nothing outside the file.

    Returns None when there is no such link. External links are refused; a soft link must point
    at an object that exists in this file (a dangling soft link is refused with its target).
    """
    where = where or name
    try:
        link = parent.get(name, getlink=True)
    except Exception as exc:
        raise UnsafeFile(f"{path}: corrupt HDF5 file: cannot read the link {where!r} ({type(exc).__name__})") from None
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise UnsafeFile(f"{path}: {where!r} is an external link to {link.filename}:{link.path}; {OUTSIDE}")
    if isinstance(link, h5py.SoftLink):
        target = link.path
        try:
            exists = target in parent.file and not isinstance(parent.file.get(target, getlink=True), h5py.ExternalLink)
        except Exception:
            exists = False
        if not exists:
            raise UnsafeFile(f"{path}: {where!r} is a soft link to {target!r}, which is not an object of this file")
    try:
        return parent[name]
    except Exception as exc:
        raise UnsafeFile(f"{path}: corrupt HDF5 file: cannot open {where!r} ({type(exc).__name__})") from None


def check_dataset(ds: h5py.Dataset, path: str, where: str, outside: str = OUTSIDE) -> None:
    """Refuse a dataset whose bytes live outside the file (external raw storage, a virtual dataset
    mapping other files) or that needs a filter plugin HDF5 would load from its search path."""
    ext = ds.external
    if ext:
        names = ", ".join(repr(e[0]) for e in ext[:3])
        raise UnsafeFile(f"{path}: dataset {where!r} keeps its data in external file(s) {names}; {outside}")
    if ds.is_virtual:
        sources = sorted({s.file_name for s in ds.virtual_sources()})
        if any(s not in (".", "") for s in sources):
            shown = ", ".join(repr(s) for s in sources[:3])
            raise UnsafeFile(f"{path}: dataset {where!r} is a virtual dataset of other files ({shown}); {outside}")
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in BUILTIN_FILTERS:
            raise UnsafeFile(
                f"{path}: dataset {where!r} needs HDF5 filter {code}, which is not built in (HDF5 would "
                f"load a plugin library for it); {REFUSE}"
            )


def check_file(f: h5py.File, path: str) -> None:
    """Check every link and dataset of a whole file (for HDF5 model files, whose layout is not
    fixed): no external link, no dangling soft link, no dataset stored or mapped outside the file,
    no filter plugin. Links are visited without being followed."""
    found: list[str] = []

    def visit(name, link):
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{path}: {name!r} is an external link to {link.filename}:{link.path}; {OUTSIDE_FILE}")
        elif isinstance(link, h5py.SoftLink):
            if f.get(link.path, getlink=True) is None or link.path not in f:
                found.append(f"{path}: {name!r} is a soft link to {link.path!r}, which is not an object of this file")
        elif isinstance(obj := f.get(name), h5py.Dataset):
            try:
                check_dataset(obj, path, name, OUTSIDE_FILE)
            except UnsafeFile as exc:
                found.append(str(exc))
        return True if found else None  # a value stops the visit

    try:
        f.visititems_links(visit)
    except Exception as exc:
        if not found:
            raise UnsafeFile(f"{path}: corrupt HDF5 file: cannot list its objects ({type(exc).__name__})") from None
    if found:
        raise UnsafeFile(found[0])


def _maybe_pickle(value) -> bytes | None:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes) and value.endswith(b"."):
        return value
    return None


def check_attrs(obj, path: str, where: str) -> None:
    """Refuse an object whose attributes hold a pickle naming a callable (PyTables would unpickle
    it). Attributes are read as raw HDF5 values; a string that only looks like a pickle is left."""
    try:
        names = list(obj.attrs.keys())
    except Exception as exc:
        raise UnsafeFile(
            f"{path}: corrupt HDF5 file: cannot read the attributes of {where!r} ({type(exc).__name__})"
        ) from None
    for name in names:
        try:
            value = obj.attrs[name]
        except Exception:  # a type h5py cannot read (e.g. a reference): nothing to run
            continue
        data = _maybe_pickle(value)
        if data is None:
            continue
        try:
            loads_plain(data)
        except _Refused as exc:
            raise UnsafeFile(f"{path}: node {where!r} attribute {name!r} holds {exc.what()}; {REFUSE}") from None
        except Exception:  # not a pickle at all: a plain string ending in "."
            continue


def attr_text(obj, name: str, default=None):
    """A string attribute as PyTables gives it: bytes decoded to text, and a pickle of plain data
    (PyTables pickles None as ``"N."``) decoded as such; ``default`` when absent."""
    if name not in obj.attrs:
        return default
    try:
        v = obj.attrs[name]
    except Exception:
        return default
    if isinstance(v, h5py.Empty):
        return default
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    data = _maybe_pickle(v)
    if data is not None and data not in (b"0", b"0."):
        try:
            return loads_plain(data)
        except _Refused as exc:
            raise UnsafeFile(
                f"{_path_of(obj)}: node {obj.name!r} attribute {name!r} holds {exc.what()}; {REFUSE}"
            ) from None
        except Exception:
            pass
    if isinstance(v, bytes | np.bytes_):
        return bytes(v).decode("utf-8", "replace")
    return v


def _path_of(obj) -> str:
    try:
        return obj.file.filename
    except Exception:
        return "<file>"


def _bool_type(ds: h5py.Dataset) -> bool:
    """Whether HDF5 stores the dataset as a bitfield (how PyTables writes numpy bools)."""
    try:
        return ds.id.get_type().get_class() == h5py.h5t.BITFIELD
    except Exception:
        return False


def attr_plain(obj, name: str, path: str, where: str):
    """An attribute PyTables stores pickled (pandas' table metadata), decoded as plain data."""
    data = _maybe_pickle(obj.attrs.get(name))
    if data is None:
        return None
    try:
        return loads_plain(data)
    except _Refused as exc:
        raise UnsafeFile(f"{path}: node {where!r} attribute {name!r} holds {exc.what()}; {REFUSE}") from None
    except pickle.UnpicklingError as exc:
        raise UnsafeFile(f"{path}: node {where!r} attribute {name!r} is not plain data ({exc})") from None


# ---------------------------------------------------------------------------------------------
# The pandas layouts


class _Frame:
    """State of one ``read_pandas_frame``: the file, the group and the size limit of its nodes."""

    def __init__(self, group: h5py.Group, path: str, key: str):
        self.g, self.path, self.key = group, path, key
        self.encoding = attr_text(group, "encoding") or "UTF-8"
        if self.encoding.lower() in ("none", ""):
            self.encoding = "UTF-8"
        self.errors = attr_text(group, "errors") or "strict"
        self.limit = META_SIZE_FACTOR * max(os.path.getsize(path), 1)

    def node(self, name: str) -> h5py.Dataset:
        where = f"{self.key}/{name}"
        ds = check_link(self.g, name, self.path, where)
        if ds is None:
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} is missing")
        if not isinstance(ds, h5py.Dataset):
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} is not a dataset")
        check_dataset(ds, self.path, where)
        check_attrs(ds, self.path, where)
        size = int(np.prod(ds.shape, dtype=np.int64)) * max(ds.dtype.itemsize, 1)
        if size > self.limit:
            raise UnsafeFile(
                f"{self.path}: {where!r} declares {ds.shape[0] if ds.shape else 0} rows ({size} bytes), far more "
                f"than a file of {os.path.getsize(self.path)} bytes can hold"
            )
        return ds

    def pickled(self, ds: h5py.Dataset, where: str, describe) -> np.ndarray:
        """A PyTables object VLArray: its one row is a pickle of the whole array."""
        if ds.shape != (1,):
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} has shape {ds.shape}, expected (1,)")
        try:
            raw = np.asarray(ds[0], dtype=np.uint8).tobytes()
        except Exception as exc:
            raise UnsafeFile(f"{self.path}: corrupt HDF5 file: cannot read {where!r} ({type(exc).__name__})") from None
        try:
            value = loads_plain(raw)
        except _Refused as exc:
            raise UnsafeFile(f"{self.path}: {describe(exc.position)} holds {exc.what()}; {REFUSE}") from None
        except pickle.UnpicklingError as exc:
            raise UnsafeFile(f"{self.path}: {describe(None)} is not a pickle of plain data ({exc})") from None
        return np.asarray(value) if not isinstance(value, np.ndarray) else value

    def array(self, name: str, describe) -> np.ndarray:
        """pandas' ``read_array`` of a fixed-format node (transposed as stored)."""
        ds = self.node(name)
        where = f"{self.key}/{name}"
        value_type = attr_text(ds, "value_type")
        if attr_text(ds, "CLASS") == "VLARRAY":
            if attr_text(ds, "PSEUDOATOM") != "object":
                raise UnsafeFile(f"{self.path}: {where!r} is a variable-length array pandas does not write")
            ret = self.pickled(ds, where, describe)
            if value_type is not None:
                ret = pd.array(ret, dtype=_plain_dtype(value_type, self.path, where))
        else:
            shape = attr_text(ds, "shape")
            if shape is not None:  # pandas' sentinel for an empty array
                ret = np.empty(
                    tuple(int(n) for n in np.atleast_1d(shape)), dtype=_plain_dtype(value_type, self.path, where)
                )
            else:
                if ds.dtype.kind not in "biuf" and ds.dtype.kind != "S":
                    raise UnsafeFile(f"{self.path}: {where!r} has dtype {ds.dtype}, which pandas' meta does not use")
                ret = ds[()]
                if _bool_type(ds) and ret.dtype == np.uint8:
                    ret = ret.astype(bool)
            if value_type and str(value_type).startswith(("datetime64", "timedelta64", "period")):
                raise UnsafeFile(f"{self.path}: {where!r} holds {value_type} values, not supported in a DB's meta")
        if int(ds.attrs.get("transposed", 0)):
            return ret.T
        return ret

    def index_node(self, name: str) -> pd.Index:
        """pandas' ``read_index_node``."""
        ds = self.node(name)
        kind = attr_text(ds, "kind")
        iname = attr_text(ds, "name")
        label = f"'{self.key}' index level {iname!r}" if iname else f"'{self.key}' node {name!r}"
        if kind == "object":
            data = self.pickled(ds, f"{self.key}/{name}", lambda pos: label)
            return pd.Index(np.asarray(data), dtype=object, name=iname)
        shape = attr_text(ds, "shape")
        if shape is not None and int(np.prod(shape)) == 0:
            data = np.empty(
                tuple(int(n) for n in np.atleast_1d(shape)),
                dtype=_plain_dtype(attr_text(ds, "value_type"), self.path, name),
            )
        else:
            data = ds[()]
        if kind == "category":
            cats = self.index(f"{name}_categories")
            cat = pd.Categorical.from_codes(data, categories=cats, ordered=bool(ds.attrs.get("ordered", False)))
            return pd.CategoricalIndex(cat, name=iname)
        if kind in ("integer", "float", "bool"):
            data = np.asarray(data)
            if kind == "bool" or (_bool_type(ds) and data.dtype == np.uint8):
                data = data.astype(bool)
            return pd.Index(data, name=iname)
        if kind == "string":
            nan_rep = attr_text(ds, "nan_rep", "nan") if "nan_rep" in ds.attrs else "nan"
            if isinstance(ds.attrs.get("nan_rep"), h5py.Empty):
                nan_rep = None
            values = self.strings(data, nan_rep or None)
            return pd.Index(values, name=iname, **({"dtype": "str"} if _string_dtype() else {}))
        raise UnsafeFile(
            f"{self.path}: '{self.key}' node {name!r} has index kind {kind!r}, not supported in a DB's meta"
        )

    def strings(self, data: np.ndarray, nan_rep) -> np.ndarray:
        flat = np.asarray(data).ravel()
        out = np.empty(flat.size, dtype=object)
        for i, v in enumerate(flat):
            s = bytes(v).decode(self.encoding, self.errors) if isinstance(v, bytes | np.bytes_) else str(v)
            out[i] = np.nan if nan_rep is not None and s == nan_rep else s
        return out.reshape(np.shape(data))

    def index(self, key: str) -> pd.Index:
        """pandas' ``read_index``: a regular index or a MultiIndex."""
        variety = attr_text(self.g, f"{key}_variety")
        if variety == "multi":
            nlevels = int(self.g.attrs.get(f"{key}_nlevels", -1))
            if not 0 < nlevels <= 64:
                raise UnsafeFile(f"{self.path}: corrupt pandas table: '{self.key}' declares {nlevels} index levels")
            levels, codes = [], []
            for i in range(nlevels):
                levels.append(self.index_node(f"{key}_level{i}"))
                codes.append(
                    np.asarray(self.array(f"{key}_label{i}", lambda pos, i=i: f"'{self.key}' index codes {i}"))
                )
            try:
                return pd.MultiIndex(
                    levels=levels, codes=codes, names=[lv.name for lv in levels], verify_integrity=True
                )
            except ValueError as exc:
                raise UnsafeFile(
                    f"{self.path}: corrupt pandas table: '{self.key}' MultiIndex ({str(exc).splitlines()[0]})"
                ) from None
        if variety == "regular":
            return self.index_node(key)
        raise UnsafeFile(f"{self.path}: corrupt pandas table: '{self.key}' {key} has index variety {variety!r}")

    def fixed(self) -> pd.DataFrame:
        """pandas' ``FrameFixed.read``."""
        if int(self.g.attrs.get("ndim", 2)) != 2:
            raise UnsafeFile(f"{self.path}: '{self.key}' is not a two-dimensional pandas table")
        columns = self.index("axis0")
        rows = self.index("axis1")
        nblocks = int(self.g.attrs.get("nblocks", -1))
        if not 0 <= nblocks <= 4096:
            raise UnsafeFile(f"{self.path}: corrupt pandas table: '{self.key}' declares {nblocks} blocks")
        frames = []
        for i in range(nblocks):
            items = self.index(f"block{i}_items")
            names = [str(c) for c in items]

            def describe(pos, names=names):
                n = len(names)
                if pos is None or not n:
                    return f"'{self.key}' column{'s' if n > 1 else ''} {', '.join(map(repr, names))}"
                return f"'{self.key}' column {names[pos % n]!r} row {pos // n}"

            values = self.array(f"block{i}_values", describe)
            where = columns.get_indexer(items)
            if (where < 0).any():
                raise UnsafeFile(f"{self.path}: corrupt pandas table: '{self.key}' block {i} names unknown columns")
            arr = values.T
            if isinstance(arr, np.ndarray):
                arr = np.asfortranarray(arr)
            if np.shape(arr)[0] != len(rows):
                raise UnsafeFile(
                    f"{self.path}: corrupt pandas table: '{self.key}' block {i} has {np.shape(arr)[0]} rows, "
                    f"the index {len(rows)}"
                )
            df = pd.DataFrame(arr, columns=columns[where], index=rows, copy=False)
            if _string_dtype() and isinstance(values, np.ndarray) and _is_string_array(values):
                df = df.astype(pd.StringDtype(na_value=np.nan))
            frames.append(df)
        if frames:
            return pd.concat(frames, axis=1).reindex(columns=columns)
        return pd.DataFrame(columns=columns, index=rows)

    def table(self) -> pd.DataFrame:
        """pandas' ``AppendableFrameTable.read`` of the whole table (no ``where``)."""
        ds = self.node("table")
        where = f"{self.key}/table"
        if ds.dtype.names is None or ds.ndim != 1:
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} is not a table")
        data = ds[()]
        index_cols = attr_plain(self.g, "index_cols", self.path, self.key) or [(0, "index")]
        non_index = attr_plain(self.g, "non_index_axes", self.path, self.key) or []
        values_cols = attr_plain(self.g, "values_cols", self.path, self.key) or []
        levels = attr_plain(self.g, "levels", self.path, self.key)
        info = attr_plain(self.g, "info", self.path, self.key) or {}
        nan_rep = attr_text(self.g, "nan_rep", "nan")
        if nan_rep in ("N.", None):
            nan_rep = "nan"
        cols: dict = {}
        for field in values_cols:
            if field not in ds.dtype.names:
                raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} has no field {field!r}")
            kind = attr_plain(ds, f"{field}_kind", self.path, where) or [field]
            meta = attr_text(ds, f"{field}_meta")
            col = data[field]
            if col.ndim == 1:
                col = col[:, None]
            if col.dtype.kind == "S":
                col = self.strings(col, nan_rep)
            elif col.dtype.kind not in "biuf":
                raise UnsafeFile(
                    f"{self.path}: {where!r} field {field!r} has dtype {col.dtype}, not supported in a DB's meta"
                )
            elif attr_text(ds, f"{field}_dtype") == "bool":
                col = col.astype(bool)
            for j, name in enumerate(kind):
                v = col[:, j]
                if meta == "str" and _string_dtype() and f"{name}_meta" in ds.attrs:  # a data column
                    v = pd.array(v, dtype=pd.StringDtype(na_value=np.nan))
                cols[name] = v
        ifield = index_cols[0][1] if index_cols else "index"
        ikind = attr_text(ds, f"{ifield}_kind") or "integer"
        if ifield not in ds.dtype.names:
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} has no index field {ifield!r}")
        idx_values = data[ifield]
        if ikind == "string":
            idx_values = self.strings(idx_values, nan_rep)
        elif ikind not in ("integer", "float", "bool"):
            raise UnsafeFile(f"{self.path}: {where!r} index kind {ikind!r} is not supported in a DB's meta")
        iname = None
        if isinstance(info, dict) and isinstance(info.get(ifield), dict):
            iname = info[ifield].get("index_name")
        order = list(non_index[0][1]) if non_index else list(cols)
        missing = [c for c in order if c not in cols]
        if missing:
            raise UnsafeFile(f"{self.path}: corrupt pandas table: {where!r} lacks column {missing[0]!r}")
        df = pd.DataFrame({c: cols[c] for c in order}, index=pd.Index(idx_values, name=iname))
        if levels:
            df = df.set_index(list(levels))
        return df


def _plain_dtype(value_type, path: str, where: str) -> str:
    try:
        dt = np.dtype(str(value_type)) if value_type not in ("str", "string") else None
    except TypeError:
        raise UnsafeFile(f"{path}: {where!r} has value type {value_type!r}, not supported in a DB's meta") from None
    if dt is None:
        return str(value_type)
    if dt.kind not in _PLAIN_KINDS:
        raise UnsafeFile(f"{path}: {where!r} has value type {value_type!r}, not supported in a DB's meta")
    return dt.str if dt.kind != "O" else "object"


def _string_dtype() -> bool:
    try:
        from pandas._config import using_string_dtype

        return bool(using_string_dtype())
    except ImportError:  # pandas < 2.3
        return False


def _is_string_array(values: np.ndarray) -> bool:
    from pandas._libs.lib import is_string_array

    return values.dtype == object and bool(is_string_array(values.ravel(), skipna=True))


def read_pandas_frame(f: h5py.File, key: str, path: str) -> pd.DataFrame:
    """The DataFrame stored under ``key`` by ``DataFrame.to_hdf`` (fixed or table format), read
    with h5py; pickles are decoded as plain data only (:func:`loads_plain`).

    Parameters
    ----------
    f : h5py.File
        The open file.
    key : str
        Group of the frame (``"meta"``).
    path : str
        File path, for messages.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UnsafeFile
        A pickle naming a callable, a link or storage outside the file, a node declaring more
        than the file can hold, or a layout pandas does not write for a plain DataFrame.
    """
    g = check_link(f, key, path)
    if not isinstance(g, h5py.Group):
        raise UnsafeFile(f"{path}: {key!r} is not a pandas table")
    check_attrs(g, path, key)
    fr = _Frame(g, path, key)
    kind = attr_text(g, "pandas_type")
    if kind == "frame":
        return fr.fixed()
    if kind == "frame_table":
        return fr.table()
    raise UnsafeFile(f"{path}: {key!r} is a pandas {kind!r}, expected a DataFrame ('frame' or 'frame_table')")


# ---------------------------------------------------------------------------------------------
# A crash of the HDF5 library


def crash_check(path: str, work) -> None:
    """Run ``work(path)`` in a child process first; if the child dies of a signal (the HDF5 library
    crashing on a damaged file), raise one line instead of letting it kill this process.

    The child is forked (cheap: ~10 ms) when this process has no other thread; otherwise (forking
    a process with threads could copy a lock another thread holds) a fresh interpreter runs
    ``work`` (a module-level function, imported by name there; ~0.5 s). ``work`` raising an
    exception in the child is not reported here: the caller runs ``work`` again and gets the same
    exception with its message.
    """
    import threading

    if hasattr(os, "fork") and threading.active_count() == 1:
        pid = os.fork()
        if pid == 0:  # pragma: no cover (child)
            code = 0
            try:
                import faulthandler

                faulthandler.disable()
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                work(path)
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    else:
        import subprocess
        import sys

        code = (
            "import faulthandler, importlib, sys; faulthandler.disable(); "
            "m = importlib.import_module(sys.argv[1]); f = getattr(m, sys.argv[2])\n"
            "try:\n    f(sys.argv[3])\nexcept BaseException:\n    sys.exit(3)"
        )
        r = subprocess.run(
            [sys.executable, "-c", code, work.__module__, work.__qualname__, str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sig = -r.returncode if r.returncode < 0 else None
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        raise UnsafeFile(f"the HDF5 library crashed reading {path} ({name}): the file is damaged")
