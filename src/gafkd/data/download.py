"""Download of PAMAP2's public archive into the raw folder a config names.

The archive is streamed to a `.part` file beside the data, with progress lines (size, rate) in
the log; a `.part` left by an interrupted transfer is resumed with an HTTP Range request where
the server allows one, and downloaded again from the start where it does not. The complete file
is checked against the configured sha256 (or its hash is computed and recorded), unpacked with
any zip it holds (the UCI archive nests `PAMAP2_Dataset.zip` in an outer zip) into a scratch
folder inside the dataset's folder, and its entries are renamed into place with `Protocol/`
last: the raw folder exists only once everything is in place, so an interrupted or failed
download leaves nothing that a rerun takes as complete. An existing raw folder, or any existing
entry beside it, is never replaced.
"""

import errno
import hashlib
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.client import HTTPException
from pathlib import Path

from gafkd.atomic import atomic_path
from gafkd.errors import ConfigError, InputError, reason
from gafkd.data.readers.pamap2 import FILE_PATTERN

log = logging.getLogger(__name__)

PAMAP2_URL = "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip"
PAMAP2_SUBJECTS = list(range(101, 110))        # the archive's Protocol/subject101.dat ... subject109.dat
DEFAULTS = {"url": PAMAP2_URL, "sha256": None, "subjects": PAMAP2_SUBJECTS}
RAW_NAME = "Protocol"                          # the folder `raw:` names; Optional/ lies beside it
CHECKSUM_NAME = "download.sha256"              # beside Protocol/: "<sha256>  <archive name>"
SCRATCH_PREFIX = ".unpack-"
CHUNK = 1 << 20
MB = 1e6


class BadArchive(InputError):
    """The downloaded file is not a complete zip, or not PAMAP2's archive: it is deleted."""


def resolve(download, where):
    """The download settings of a dataset with the defaults filled in (None stays None)."""
    if download is None:
        return None
    if not isinstance(download, dict):
        raise ConfigError(f"{where}: a mapping of url, sha256 and subjects, not {download!r}")
    unknown = sorted(set(download) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(DEFAULTS)})")
    resolved = {key: download.get(key) if download.get(key) is not None else default
                for key, default in DEFAULTS.items()}
    if resolved["sha256"] is not None:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", str(resolved["sha256"])):
            raise ConfigError(f"{where}.sha256: {resolved['sha256']!r} is not a sha256 (64 hex digits)")
        resolved["sha256"] = resolved["sha256"].lower()
    resolved["subjects"] = sorted(resolved["subjects"])
    return resolved


def archive_name(url):
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return name or "archive.zip"


def _mb(n):
    return f"{n / MB:.1f} MB"


def _content_range(header):
    """(first byte, total) of a Content-Range header; None where absent or unknown."""
    match = re.fullmatch(r"\s*bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)\s*", header or "")
    if match is None:
        return None, None
    first, total = match.groups()
    return (None if first == "*" else int(first)), (None if total == "*" else int(total))


def _stream(response, part, mode, have, total, url, progress_seconds):
    """Append the response body to part; log progress every progress_seconds. Returns the size.
    A transfer that breaks off raises InputError and keeps what part holds, synced to disk."""
    started = last = time.monotonic()
    received = 0
    try:
        with open(part, mode) as f:
            while True:
                try:
                    chunk = response.read1(CHUNK)      # what has arrived, up to CHUNK bytes
                except (OSError, HTTPException) as exc:
                    f.flush()
                    os.fsync(f.fileno())
                    of = f"of {total} " if total else ""
                    raise InputError(f"{url}: the transfer stopped after {have + received} {of}bytes "
                                     f"({reason(exc)}); {part} keeps them and a rerun resumes") from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                now = time.monotonic()
                if now - last >= progress_seconds:
                    last = now
                    done = have + received
                    of = f" of {_mb(total)} ({100 * done / total:.0f} %)" if total else ""
                    log.info("%s%s, %.1f MB/s", _mb(done), of, received / MB / max(now - started, 1e-9))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InputError(f"{part}: cannot write the download, the disk is full; free some "
                             f"space and run again (the download resumes)") from None
        raise
    seconds = max(time.monotonic() - started, 1e-9)
    log.info("received %s in %.1f s (%.1f MB/s)", _mb(received), seconds, received / MB / seconds)
    return have + received


def fetch(url, part, where="download.url", timeout=60, progress_seconds=10.0):
    """Download url into part, resuming what part already holds where the server answers a Range
    request (else starting again). Returns the size. The transfer stopping before the announced
    size raises InputError and keeps part, for the next call to resume."""
    part = Path(part)
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "gafkd"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:        # nothing after byte `have`: complete, or not this file
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                log.info("%s: %s already holds all %s", url, part, _mb(have))
                return have
            log.info("%s: %s does not fit the file on the server; downloading it again", url, part)
            part.unlink()
            return fetch(url, part, where, timeout, progress_seconds)
        raise InputError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; check {where}") from None
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
        problem = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise InputError(f"{url}: cannot download it ({reason(problem)}); the download needs "
                         f"internet access and a valid {where}") from None
    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.strip().isdigit() else None
        first, total = _content_range(response.headers.get("Content-Range"))
        if have and response.status == 206 and first != have:   # not the bytes asked for
            response.close()
            log.info("%s: the server sent another part than the one asked for; starting again", url)
            part.unlink(missing_ok=True)
            return fetch(url, part, where, timeout, progress_seconds)
        if have and response.status == 206:
            mode = "ab"
            total = total if total is not None else (have + length if length is not None else None)
            log.info("%s: resuming at %s of %s", url, _mb(have), _mb(total) if total else "unknown size")
        else:
            if have:
                log.info("%s: the server does not resume a download; starting again", url)
            have, mode, total = 0, "wb", length
            log.info("%s: downloading %s", url, _mb(total) if total is not None else "(size not announced)")
        size = _stream(response, part, mode, have, total, url, progress_seconds)
    if total is not None and size != total:
        raise InputError(f"{url}: the connection closed after {size} of {total} bytes; {part} "
                         f"keeps them and a rerun resumes")
    return size


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, url, expected=None, where="download.sha256"):
    """The file's sha256; a mismatch with `expected` deletes the file and raises InputError naming
    both hashes."""
    found = sha256_of(path)
    if expected is not None and found != expected.lower():
        Path(path).unlink()
        raise InputError(f"{url}: the downloaded file's sha256 is {found}, but {where} is "
                         f"{expected.lower()}; the file is deleted and nothing is unpacked (check "
                         f"the URL, or the hash)")
    return found


def _extract(archive, destination):
    with zipfile.ZipFile(archive) as z:
        z.extractall(destination)               # members are checked against their CRC


def unpack(archive, scratch, url, depth=3):
    """Extract archive, and every zip inside it (to `depth` levels), into scratch; returns the
    folder that holds Protocol/ with subjectNNN.dat files."""
    scratch = Path(scratch)
    try:
        _extract(archive, scratch)
        for _ in range(depth):
            nested = sorted(p for p in scratch.rglob("*") if p.suffix.lower() == ".zip" and p.is_file())
            if not nested:
                break
            for inner in nested:
                _extract(inner, inner.with_name(inner.name + "-contents"))
                inner.unlink()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise BadArchive(f"{url}: not a complete zip archive ({reason(exc)})") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InputError(f"{scratch}: cannot unpack the archive, the disk is full; free some "
                             f"space and run again") from None
        raise
    found = sorted((p for p in scratch.rglob(RAW_NAME) if p.is_dir()
                    and any(FILE_PATTERN.match(f.name) for f in p.iterdir())),
                   key=lambda p: len(p.parts))
    if not found:
        raise BadArchive(f"{url}: the archive holds no {RAW_NAME}/ folder of subjectNNN.dat files "
                         f"(is it PAMAP2's?)")
    return found[0].parent


def check_subjects(protocol, subjects, all_subjects, url, where):
    """The unpacked Protocol/ must hold every subject the workflow planned its folds for, and,
    where the config does not choose subjects, exactly download.subjects."""
    found = sorted(int(m.group(1)) for f in Path(protocol).iterdir() if (m := FILE_PATTERN.match(f.name)))
    missing = sorted(set(subjects) - set(found))
    if missing:
        raise InputError(f"{url}: the archive's {RAW_NAME}/ holds subjects {found}, not {missing}; "
                         f"the folds were planned from {where}.subjects (or the dataset's "
                         f"`subjects:`): list the subjects the archive holds")
    extra = sorted(set(found) - set(all_subjects)) if all_subjects is not None else []
    if extra:
        raise InputError(f"{url}: the archive's {RAW_NAME}/ also holds subject(s) {extra}, which "
                         f"{where}.subjects {sorted(all_subjects)} leaves out; the folds were "
                         f"planned from that list: add them, or choose subjects with `subjects:`")
    return found


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(unpacked, root):
    """Rename the unpacked dataset folder's entries into root, Protocol/ last. An entry that root
    already holds is kept as it is; an existing Protocol/ stops the install."""
    unpacked, root = Path(unpacked), Path(root)
    target = root / RAW_NAME
    if os.path.lexists(target):
        raise InputError(f"{target}: exists already; a download never replaces a raw folder")
    for entry in sorted(unpacked.iterdir()):
        if entry.name == RAW_NAME:
            continue
        destination = root / entry.name
        if os.path.lexists(destination):
            log.info("%s exists already: kept as it is, the archive's copy is not unpacked", destination)
            continue
        os.rename(entry, destination)
    os.rename(unpacked / RAW_NAME, target)
    _fsync_dir(root)


def read_record(raw):
    """(sha256, archive name, record path) of the download that wrote raw, or None."""
    path = Path(raw).parent / CHECKSUM_NAME
    if Path(raw).name != RAW_NAME or not path.is_file():
        return None
    match = re.match(r"([0-9a-f]{64})\s+\*?(.+)", path.read_text().strip())
    return (match.group(1), match.group(2), path) if match else None


def download_raw(raw, url=PAMAP2_URL, sha256=None, subjects=PAMAP2_SUBJECTS, all_subjects=None,
                 where="download", progress_seconds=10.0):
    """Fetch, check and unpack the archive at url so that raw (a missing folder named Protocol)
    holds its Protocol/ recordings, Optional/ and the archive's other entries beside it.

    subjects: the subject ids raw must hold; all_subjects: where not None, exactly the subject
    ids it must hold. Returns the archive's sha256, also written to <raw's parent>/download.sha256.
    """
    raw = Path(raw)
    if raw.name != RAW_NAME:
        raise ConfigError(f"{raw}: the archive unpacks a folder named {RAW_NAME}; name it as raw")
    if os.path.lexists(raw):
        raise InputError(f"{raw}: exists already; a download never replaces a raw folder")
    root = raw.parent
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{SCRATCH_PREFIX}*"):        # left by a killed download
        log.info("removing %s, left by an interrupted unpack", stale)
        shutil.rmtree(stale, ignore_errors=True)
    name = archive_name(url)
    part = root / f"{name}.part"
    size = fetch(url, part, f"{where}.url", progress_seconds=progress_seconds)
    digest = check_sha256(part, url, sha256, f"{where}.sha256")
    if sha256:
        log.info("%s: sha256 %s, as %s says", name, digest, f"{where}.sha256")
    else:
        log.info("%s: sha256 %s (no %s set: recorded in %s; set it to check a later download)",
                 name, digest, f"{where}.sha256", root / CHECKSUM_NAME)
    scratch = root / f"{SCRATCH_PREFIX}{os.getpid()}"
    try:
        scratch.mkdir()
        try:
            unpacked = unpack(part, scratch, url)
        except BadArchive:
            part.unlink()                               # the next run downloads it again
            raise
        check_subjects(unpacked / RAW_NAME, subjects, all_subjects, url, where)
        with atomic_path(root / CHECKSUM_NAME) as tmp:
            tmp.write_text(f"{digest}  {name}\n")
        install(unpacked, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    part.unlink()
    log.info("%s: the %s archive unpacked into %s (%s beside it)", url, _mb(size), raw,
             ", ".join(sorted(p.name for p in root.iterdir() if p.name != RAW_NAME
                              and not p.name.startswith("."))))
    return digest
