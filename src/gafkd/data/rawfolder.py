"""A raw folder, entry by entry: every entry is either a file the reader reads or named with the
reason it is not, so that nothing is skipped without a word.

A file to read has the format's extension in any case (`.mat`, `.MAT`: MATLAB and PAMAP2's own
tools do not tell them apart), is a regular file or a link to one, and has a name that matches
the format's pattern; the window or subject it names is its identity (numbers, not their
spelling: Window-1 and Window-0001 are one window), and two files of one identity are an
error naming both.
"""

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gafkd.errors import InputError


@dataclass
class RawListing:
    files: list                                   # (identity, path), sorted by identity
    skipped: list = field(default_factory=list)   # (entry name, why it is not read)


def scan(raw, extension, pattern, spelled, identity, describe, kind):
    """The RawListing of folder `raw`: entries ending in `extension` (any case) are read and must
    be `kind` files (e.g. "MATLAB") whose names match `pattern` (a regex of the name without its
    extension; `spelled` says it in an error);
    `identity(match)` -> a sortable tuple, `describe(identity)` -> words for a duplicate's error."""
    raw = Path(raw)
    name_pattern = re.compile(rf"^{pattern}{re.escape(extension)}$", re.IGNORECASE)
    files, skipped, seen = [], [], {}
    for entry in sorted(raw.iterdir()):
        if not entry.name.lower().endswith(extension):
            skipped.append((entry.name, "a folder" if entry.is_dir() else f"not a {extension} file"))
            continue
        if entry.is_symlink() and not entry.exists():
            raise InputError(f"{entry}: a link to {os.readlink(entry)}, which does not exist; "
                             f"restore the file it points to or remove the link")
        if not entry.is_file():
            what = "a folder" if entry.is_dir() else "a device, pipe or socket"
            raise InputError(f"{entry}: is {what}, not a {kind} file; move it out of {raw}")
        match = name_pattern.match(entry.name)
        if match is None:
            raise InputError(f"{entry}: file name does not match {spelled}; rename it, or move it "
                             f"out of {raw}")
        key = identity(match)
        if key in seen:
            raise InputError(f"{seen[key]} and {entry}: both are {describe(key)}; keep one of them")
        seen[key] = entry
        files.append((key, entry))
    files.sort(key=lambda item: item[0])
    return RawListing(files, skipped)


def folder_state(raw):
    """A digest of every entry of folder `raw`: name, size and modification time (of what a link
    points to), so that a file edited, added, removed or renamed changes it; 'absent' when the
    folder does not exist."""
    raw = Path(raw)
    if not raw.is_dir():
        return "absent"
    digest = hashlib.blake2b(digest_size=16)
    for entry in sorted(os.scandir(raw), key=lambda e: e.name):
        try:
            stat = entry.stat()
            digest.update(f"{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            digest.update(f"{entry.name}\0unreadable\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
