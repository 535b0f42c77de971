"""HDF5 outputs with a checksum on every chunk and a digest of their attributes, read back
checked: a damaged file raises InputError naming it instead of feeding a job wrong numbers."""

import hashlib
import json
import math
import os

import h5py
import numpy as np

from gafkd.errors import REBUILD, InputError, damaged, reason

CHUNK_BYTES = 1 << 20
ATTRS_DIGEST = "attrs_digest"


def create_h5(path):
    """A new HDF5 file in a format whose structures carry checksums. Without a chunk cache, a
    failed write (disk full) raises where it happens rather than when the file is closed."""
    return h5py.File(path, "w", libver="v110", rdcc_nbytes=0)


def create_checked(parent, name, shape, dtype, rows=None):
    """A dataset with HDF5's fletcher32 checksum on every chunk of `rows` rows (default: ~1 MiB)."""
    shape = tuple(shape)
    row_bytes = np.dtype(dtype).itemsize * math.prod(shape[1:])
    rows = rows or max(1, CHUNK_BYTES // max(1, row_bytes))
    chunks = (max(1, min(rows, shape[0])),) + shape[1:]
    maxshape = (None,) + shape[1:] if shape[0] == 0 else None   # a chunk may outgrow only a resizable axis
    return parent.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, maxshape=maxshape,
                                 fletcher32=True)


def write_checked(parent, name, data, rows=None):
    data = np.asarray(data)
    dataset = create_checked(parent, name, data.shape, data.dtype, rows)
    if data.size:
        dataset[...] = data
    return dataset


def _empty(path):
    return os.path.isfile(path) and os.path.getsize(path) == 0


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _attributes(f):
    """{object name: {attribute: value}} of every object in the file, as plain Python values."""
    record = {"/": {k: _plain(v) for k, v in f.attrs.items()}}

    def add(name, obj):
        record[name] = {k: _plain(v) for k, v in obj.attrs.items()}

    f.visititems(add)
    return record


def _attribute_digests(record):
    """{attribute path: short hash of its value} of an _attributes record."""
    def short_hash(value):
        text = json.dumps(value, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    return {(key if name == "/" else f"{name}/{key}"): short_hash(value)
            for name, attrs in record.items() for key, value in attrs.items()}


def seal(f):
    """Store a hash of every attribute in the file; call it last. HDF5 keeps string attributes in
    a heap that no checksum covers."""
    f.attrs[ATTRS_DIGEST] = json.dumps(_attribute_digests(_attributes(f)), sort_keys=True)


class CheckedH5:
    """An HDF5 file open for reading, its attributes checked against their digest. A read that
    fails (a chunk fails its checksum, a structure is damaged) raises InputError naming the file.

    `require_seal=False` also opens files written without the digest (their attributes unchecked).
    """

    def __init__(self, path, what, require_seal=True):
        self.path, self.what = path, what
        try:
            self.file = h5py.File(path, "r")
        except FileNotFoundError:
            raise InputError(f"{path}: no such {what}") from None
        except OSError as exc:
            raise damaged(path, what, "empty file" if _empty(path) else reason(exc)) from None
        try:
            self._attrs = _attributes(self.file)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            self.file.close()
            raise damaged(path, what, f"unreadable attributes: {reason(exc)}") from None
        stored = self._attrs["/"].pop(ATTRS_DIGEST, None)
        self.sealed = stored is not None
        problem = None
        if stored is None and require_seal:
            problem = InputError(f"{path}: {what} carries no checksums (written by an earlier "
                                 f"version of gafkd); {REBUILD}")
        elif stored is not None:
            problem = self._check_attributes(stored)
        if problem:
            self.file.close()
            raise problem

    def _check_attributes(self, stored):
        try:
            stored = json.loads(stored)
        except (TypeError, ValueError):
            stored = None
        if not isinstance(stored, dict):
            return damaged(self.path, self.what, f"its attribute '{ATTRS_DIGEST}' is unreadable")
        found = _attribute_digests(self._attrs)
        wrong = sorted(k for k in stored.keys() | found.keys() if stored.get(k) != found.get(k))
        if wrong:
            return damaged(self.path, self.what, f"attribute(s) {', '.join(wrong)} do not match "
                                                 f"their checksum")
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    @property
    def attrs(self):
        return self._attrs["/"]

    def attrs_of(self, name):
        if name not in self._attrs:
            raise damaged(self.path, self.what, f"no '{name}'")
        return self._attrs[name]

    def json(self, key, name="/"):
        attrs = self.attrs_of(name)
        try:
            return json.loads(attrs[key])
        except (KeyError, TypeError, ValueError) as exc:
            raise damaged(self.path, self.what, f"attribute '{key}' of '{name}': {reason(exc)}") from None

    def shape(self, name):
        return self._dataset(name).shape

    def dtype(self, name):
        return self._dataset(name).dtype

    def array(self, name, selection=()):
        dataset = self._dataset(name)
        try:
            return dataset[selection]
        except (OSError, RuntimeError) as exc:
            problem = (f"'{name}' fails its checksum" if "filter returned failure" in str(exc)
                       else f"reading '{name}': {reason(exc)}")
            raise damaged(self.path, self.what, problem) from None

    def _dataset(self, name):
        try:
            return self.file[name]
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise damaged(self.path, self.what, f"no readable '{name}': {reason(exc)}") from None
