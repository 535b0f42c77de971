"""PAMAP2's download stage against a local HTTP server that serves a small archive laid out (and
nested) as the UCI one: the library alone, then the download + windows rules end to end."""
import hashlib
import io
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import REPO, tree_digest
from rawfiles import make_pamap2_folder, pamap2_table, write_pamap2
from test_workflow import snakemake

from gafkd.config import check_config_file, fold_names, planned_downloads
from gafkd.configfile import schema_errors
from gafkd.data.datasets import resolve_dataset
from gafkd.data.download import CHECKSUM_NAME, PAMAP2_SUBJECTS, download_raw, read_record
from gafkd.errors import ConfigError, InputError

ARCHIVE_PATH = "/static/public/231/pamap2+physical+activity+monitoring.zip"
SUBJECTS = [101, 102, 103, 104]


def zip_bytes(entries):
    """A zip of {arcname: bytes}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(zip bytes, the dataset folder they hold): an outer zip with readme.pdf and
    PAMAP2_Dataset.zip, which holds PAMAP2_Dataset/{Protocol,Optional}/subjectNNN.dat and a pdf."""
    source = tmp_path_factory.mktemp("source") / "PAMAP2_Dataset"
    make_pamap2_folder(source / "Protocol")
    (source / "Optional").mkdir()
    write_pamap2(source / "Optional" / "subject101.dat", pamap2_table([(9, 120), (10, 120)]))
    (source / "readme.pdf").write_bytes(b"%PDF-1.4 PAMAP2 fixture readme\n")
    inner = zip_bytes({f"PAMAP2_Dataset/{p.relative_to(source)}": p.read_bytes()
                       for p in sorted(source.rglob("*")) if p.is_file()})
    return zip_bytes({"readme.pdf": b"%PDF-1.4 outer readme\n", "PAMAP2_Dataset.zip": inner}), source


class Handler(BaseHTTPRequestHandler):
    """GET of the served files; Range requests (bytes=N-) where the server allows them; the next
    `truncate` responses announce their full length and close the connection halfway; with
    `stall`, responses stop halfway until `released` is set."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        asked = self.headers.get("Range")
        state["requests"].append((self.path, asked))
        body = state["files"].get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if asked and state["ranges"]:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if state["truncate"] or state["stall"]:
            self.wfile.write(rest[: len(rest) // 2])
            self.wfile.flush()
            if state["stall"]:                   # hold the connection open until released
                state["released"].wait(30)
            else:
                state["truncate"] -= 1
            self.close_connection = True
            return
        self.wfile.write(rest)


@pytest.fixture
def server(archive):
    """A server on 127.0.0.1 serving the archive at UCI's path; .state, .url."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = {"files": {ARCHIVE_PATH: archive[0]}, "ranges": True, "truncate": 0, "stall": False,
                   "released": threading.Event(), "requests": []}
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.url = httpd.base + ARCHIVE_PATH
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.state["released"].set()
    httpd.shutdown()
    httpd.server_close()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def leftovers(root):
    """Partial downloads and unpack folders under root."""
    return sorted(p.name for p in Path(root).iterdir() if p.name.endswith(".part") or p.name.startswith(".unpack-"))


# --- the library -------------------------------------------------------------------------------


def test_download_unpacks_the_nested_archive_and_records_its_hash(tmp_path, server, archive, caplog):
    data, source = archive
    raw = tmp_path / "data" / "PAMAP2_Dataset" / "Protocol"
    with caplog.at_level(logging.INFO, logger="gafkd"):
        digest = download_raw(raw, server.url, subjects=SUBJECTS, all_subjects=SUBJECTS,
                              progress_seconds=0)
    assert digest == sha256(data)
    root = raw.parent
    assert tree_digest(raw) == tree_digest(source / "Protocol")
    assert tree_digest(root / "Optional") == tree_digest(source / "Optional")
    assert (root / "readme.pdf").read_bytes() == (source / "readme.pdf").read_bytes()
    assert (root / CHECKSUM_NAME).read_text() == f"{digest}  pamap2+physical+activity+monitoring.zip\n"
    assert read_record(raw) == (digest, "pamap2+physical+activity+monitoring.zip", root / CHECKSUM_NAME)
    assert leftovers(root) == []
    text = caplog.text
    assert re.search(r"downloading \d+\.\d MB", text) and re.search(r"\d+\.\d MB/s", text)
    assert f"sha256 {digest} (no download.sha256 set" in text


def test_a_configured_hash_is_checked(tmp_path, server, archive):
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    assert download_raw(raw, server.url, sha256=sha256(archive[0]).upper(), subjects=SUBJECTS) == sha256(archive[0])
    wrong = "0" * 64
    other = tmp_path / "again" / "Protocol"
    with pytest.raises(InputError) as error:
        download_raw(other, server.url, sha256=wrong, subjects=SUBJECTS, where="datasets.p.download")
    message = str(error.value)
    assert sha256(archive[0]) in message and wrong in message and "datasets.p.download.sha256" in message
    assert server.url in message
    assert sorted(p.name for p in other.parent.iterdir()) == []         # nothing kept, nothing unpacked


def test_a_truncated_transfer_leaves_no_raw_folder_and_the_next_call_resumes(tmp_path, server, archive):
    data, source = archive
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    server.state["truncate"] = 1
    with pytest.raises(InputError, match=rf"{re.escape(server.url)}: the connection closed after "
                                         rf"{len(data) // 2} of {len(data)} bytes"):
        download_raw(raw, server.url, subjects=SUBJECTS)
    assert not raw.exists() and not (raw.parent / "Optional").exists()
    part = raw.parent / "pamap2+physical+activity+monitoring.zip.part"
    assert sorted(p.name for p in raw.parent.iterdir()) == [part.name]  # only the bytes to resume from
    assert part.stat().st_size == len(data) // 2
    download_raw(raw, server.url, subjects=SUBJECTS)
    assert server.state["requests"][-1] == (ARCHIVE_PATH, f"bytes={len(data) // 2}-")
    assert tree_digest(raw) == tree_digest(source / "Protocol") and leftovers(raw.parent) == []


def test_a_killed_download_leaves_nothing_taken_as_complete(tmp_path, server, archive):
    data, source = archive
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    part = raw.parent / "pamap2+physical+activity+monitoring.zip.part"
    server.state["stall"] = True
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); from gafkd.data.download import "
            f"download_raw; download_raw({str(raw)!r}, {server.url!r}, subjects={SUBJECTS!r})")
    job = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size == len(data) // 2):
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        job.kill()
        job.wait()
    server.state.update(stall=False)
    server.state["released"].set()
    (raw.parent / ".unpack-999999").mkdir()                 # as a job killed while unpacking leaves it
    assert not raw.exists() and read_record(raw) is None
    download_raw(raw, server.url, subjects=SUBJECTS)
    assert server.state["requests"][-1] == (ARCHIVE_PATH, f"bytes={len(data) // 2}-")
    assert tree_digest(raw) == tree_digest(source / "Protocol") and leftovers(raw.parent) == []


def test_a_server_without_ranges_downloads_again_from_the_start(tmp_path, server, archive):
    data, source = archive
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    server.state.update(truncate=1, ranges=False)
    with pytest.raises(InputError, match="closed after"):
        download_raw(raw, server.url, subjects=SUBJECTS)
    assert read_record(raw) is None
    assert download_raw(raw, server.url, subjects=SUBJECTS) == sha256(data)
    assert tree_digest(raw) == tree_digest(source / "Protocol")


def test_an_existing_raw_folder_or_entry_is_never_touched(tmp_path, server, archive, pamap2_folder):
    folder, _ = pamap2_folder                                   # tmp_path/Protocol
    before = tree_digest(tmp_path)
    with pytest.raises(InputError, match="exists already; a download never replaces a raw folder"):
        download_raw(folder, server.url, subjects=SUBJECTS)
    assert tree_digest(tmp_path) == before and server.state["requests"] == []
    # Protocol/ missing but Optional/ there: Optional/ is kept as it is, Protocol/ unpacked
    root = tmp_path / "other"
    (root / "Optional").mkdir(parents=True)
    (root / "Optional" / "mine.txt").write_text("kept")
    download_raw(root / "Protocol", server.url, subjects=SUBJECTS)
    assert sorted(p.name for p in (root / "Optional").iterdir()) == ["mine.txt"]
    assert tree_digest(root / "Protocol") == tree_digest(archive[1] / "Protocol")


def test_a_missing_file_names_the_url(tmp_path, server):
    url = server.url.replace(".zip", "-v2.zip")
    with pytest.raises(InputError, match=rf"^{re.escape(url)}: the server answered HTTP 404 "
                                         rf"Not Found; check datasets.p.download.url"):
        download_raw(tmp_path / "P" / "Protocol", url, subjects=SUBJECTS, where="datasets.p.download")
    with socket.socket() as s:                                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/archive.zip"
    with pytest.raises(InputError, match=rf"^{re.escape(closed)}: cannot download it \("):
        download_raw(tmp_path / "P" / "Protocol", closed, subjects=SUBJECTS)
    assert not (tmp_path / "P" / "Protocol").exists()


def test_what_is_not_a_zip_is_deleted_and_never_unpacked(tmp_path, server):
    server.state["files"]["/page.zip"] = b"<html>Service unavailable</html>"
    url = server.base + "/page.zip"
    with pytest.raises(InputError, match=rf"{re.escape(url)}: not a complete zip archive"):
        download_raw(tmp_path / "P" / "Protocol", url, subjects=SUBJECTS)
    assert sorted(p.name for p in (tmp_path / "P").iterdir()) == []


def test_subjects_the_folds_were_planned_for_are_checked(tmp_path, server, archive):
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    with pytest.raises(InputError, match=r"holds subjects \[101, 102, 103, 104\], not \[105, 106, 107, "
                                         r"108, 109\]"):
        download_raw(raw, server.url, subjects=PAMAP2_SUBJECTS, all_subjects=PAMAP2_SUBJECTS)
    with pytest.raises(InputError, match=r"also holds subject\(s\) \[104\], which datasets.p.download"
                                         r".subjects \[101, 102, 103\] leaves out"):
        download_raw(raw, server.url, subjects=[101, 102, 103], all_subjects=[101, 102, 103],
                     where="datasets.p.download")
    assert not raw.exists()
    requests = len(server.state["requests"])
    download_raw(raw, server.url, subjects=[101, 102, 103])     # chosen subjects: the rest may be there
    # the verified download was kept: the server only said that nothing was left to send
    assert server.state["requests"][requests:] == [(ARCHIVE_PATH, f"bytes={len(archive[0])}-")]
    assert leftovers(raw.parent) == []


# --- the config --------------------------------------------------------------------------------


def pamap2_spec(raw, **extra):
    return {"source": "pamap2", "raw": str(raw), **extra}


def test_download_config_and_planned_folds(tmp_path):
    raw = tmp_path / "PAMAP2_Dataset" / "Protocol"
    spec = resolve_dataset("p", pamap2_spec(raw, download={}))
    assert spec["download"] == {"url": "https://archive.ics.uci.edu/static/public/231/pamap2+physical"
                                       "+activity+monitoring.zip", "sha256": None,
                                "subjects": PAMAP2_SUBJECTS}
    assert fold_names(spec) == [f"fold{i}" for i in range(9)]          # before the download
    chosen = resolve_dataset("p", pamap2_spec(raw, download={}, subjects=[103, 101]))
    assert fold_names(chosen) == ["fold0", "fold1"]
    plans = planned_downloads({"p": spec, "q": chosen})
    assert plans == {str(raw): {"url": spec["download"]["url"], "sha256": None,
                                "subjects": PAMAP2_SUBJECTS, "all_subjects": PAMAP2_SUBJECTS,
                                "where": "datasets.p.download"}}
    other = resolve_dataset("q", pamap2_spec(raw, download={"sha256": "A" * 64}))
    assert other["download"]["sha256"] == "a" * 64
    with pytest.raises(ConfigError, match=r"^datasets.q.download: differs from datasets.p.download"):
        planned_downloads({"p": spec, "q": other})
    make_pamap2_folder(raw)                          # an existing folder: its files, no download
    assert fold_names(spec) == [f"fold{i}" for i in range(4)] and planned_downloads({"p": spec}) == {}


def test_download_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^datasets.g.download: does not apply to source 'geneactiv_mat'"):
        resolve_dataset("g", {"source": "geneactiv_mat", "raw": "x", "window": 50, "download": {}})
    with pytest.raises(ConfigError, match=r"^datasets.p.raw: the download unpacks PAMAP2's Protocol/ .* "
                                          r"not data/PAMAP2_Dataset$"):
        resolve_dataset("p", pamap2_spec("data/PAMAP2_Dataset", download={}))
    with pytest.raises(ConfigError, match=r"^datasets.p.raw: .* not Protocol$"):
        resolve_dataset("p", pamap2_spec("Protocol", download={}))
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    for download, key in [({"sha256": "abc"}, "datasets.p.download.sha256"),
                          ({"url": "ftp://example.org/a.zip"}, "datasets.p.download.url"),
                          ({"md5": "x"}, "datasets.p.download")]:
        config = {"datasets": {"p": pamap2_spec("data/P/Protocol", download=download)}}
        assert schema_errors(config, schema).startswith(f"{key}: "), download
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"p": pamap2_spec(tmp_path / "P" / "Protocol", download={},
                                                                  split={"kind": "holdout",
                                                                         "test_subjects": [110]})}}))
    with pytest.raises(ConfigError, match=r"no raw files for subject\(s\) \[110\]"):
        check_config_file(path)


# --- the rules, end to end ---------------------------------------------------------------------


def experiment(workdir, url, **download):
    config = {
        "datasets": {"pamap2": {
            "source": "pamap2", "raw": "data/PAMAP2_Dataset/Protocol", "channels": "acc16",
            "class_map": {1: "lying", 4: "walking", 24: "rope jumping"},
            "split": {"kind": "loso", "val_fraction": 0.3},
            "download": {"url": url, "subjects": SUBJECTS, **download}}},
        "images": {"methods": ["gasf"], "size": 32},
    }
    path = workdir / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def download_log(workdir):
    return (workdir / "data" / "PAMAP2_Dataset" / "download.log").read_text()


def test_download_and_windows_rules_end_to_end(tmp_path, server, archive):
    data, source = archive
    configfile = experiment(tmp_path, server.url)
    run = snakemake(tmp_path, "windows", configfile=configfile)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "rule download_raw:" in run.stdout + run.stderr
    root = tmp_path / "data" / "PAMAP2_Dataset"
    assert {k: v for k, v in tree_digest(root / "Protocol").items() if k != ".snakemake_timestamp"} \
        == tree_digest(source / "Protocol")
    assert tree_digest(root / "Optional") == tree_digest(source / "Optional")
    assert leftovers(root) == [] and len(server.state["requests"]) == 1
    digest = sha256(data)
    assert (root / CHECKSUM_NAME).read_text().split() == [digest, "pamap2+physical+activity+monitoring.zip"]
    assert re.search(r"\d+\.\d MB/s", download_log(tmp_path))
    summary = (tmp_path / "results/pamap2/windows_summary.md").read_text()
    assert f"sha256 `{digest}`" in summary
    with h5py.File(tmp_path / "results/pamap2/windows.h5") as f:
        assert sorted(f["folds"]) == ["fold0", "fold1", "fold2", "fold3"]
    # planned from download.subjects, and the same once the folder exists: nothing to redo
    again = snakemake(tmp_path, "windows", "-n", configfile=configfile)
    assert "Nothing to be done" in again.stdout + again.stderr
    # the raw folder is no job's output now, so even --forceall never deletes or fetches it
    forced = snakemake(tmp_path, "windows", "-n", "--forceall", configfile=configfile)
    assert forced.returncode == 0 and "download_raw" not in forced.stdout
    # a hash set afterwards (as the summary suggests) changes no windows
    experiment(tmp_path, server.url, sha256=digest)
    assert "Nothing to be done" in snakemake(tmp_path, "windows", "-n", configfile=configfile).stdout


def test_wrong_hash_stops_the_job_naming_both_hashes(tmp_path, server, archive):
    wrong = "f" * 64
    run = snakemake(tmp_path, "windows", configfile=experiment(tmp_path, server.url, sha256=wrong))
    assert run.returncode != 0
    log = download_log(tmp_path)
    assert sha256(archive[0]) in log and wrong in log and "datasets.pamap2.download.sha256" in log
    root = tmp_path / "data" / "PAMAP2_Dataset"
    assert not (root / "Protocol").exists() and leftovers(root) == []
    assert not (tmp_path / "results/pamap2/windows.h5").exists()


def test_truncated_download_leaves_nothing_a_rerun_would_take_as_complete(tmp_path, server, archive):
    configfile = experiment(tmp_path, server.url)
    server.state["truncate"] = 1
    run = snakemake(tmp_path, "windows", configfile=configfile)
    assert run.returncode != 0
    root = tmp_path / "data" / "PAMAP2_Dataset"
    assert "the connection closed after" in download_log(tmp_path)
    assert not (root / "Protocol").exists() and not (root / "Optional").exists()
    assert not any(p.name.startswith(".unpack-") for p in root.iterdir())
    rerun = snakemake(tmp_path, "windows", configfile=configfile)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert server.state["requests"][-1][1] == f"bytes={len(archive[0]) // 2}-"      # resumed
    assert tree_digest(root / "Optional") == tree_digest(archive[1] / "Optional")
    assert (tmp_path / "results/pamap2/windows.h5").is_file() and leftovers(root) == []


def test_missing_archive_names_the_url(tmp_path, server):
    url = server.url.replace("231", "232")
    run = snakemake(tmp_path, "windows", configfile=experiment(tmp_path, url))
    assert run.returncode != 0
    assert f"{url}: the server answered HTTP 404 Not Found; check datasets.pamap2.download.url" \
        in download_log(tmp_path)
    assert not (tmp_path / "data" / "PAMAP2_Dataset" / "Protocol").exists()
