"""Files of OpenNeuro datasets that a ``fulltest.yaml`` names under ``required_files``.

Each file is looked for, in order, in ``--data DIR`` (``DIR/<dataset>/<file>``), in the
configured data directory (``$NEURODESK_TEST_DATA``), in the download cache
(``$NEURODESK_HOME/cache/openneuro/<dataset>/<file>``), and finally downloaded over HTTPS from
``<url>/<dataset>/<file>`` into that cache. The URL is configuration
(``$NEURODESK_OPENNEURO_URL``, default OpenNeuro's public bucket), so tests and sites point it
at a mirror. Found files are copied into the suite's directory (tools may change their inputs).

Only the files named are fetched (upstream clones each dataset with datalad); a download is
written to a temporary name and renamed into place, so the cache never holds a partial file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from neurodesk.paths import Paths
from neurodesk.recipe.fulltest import Dataset

DEFAULT_URL = "https://s3.amazonaws.com/openneuro.org"
URL_ENV = "NEURODESK_OPENNEURO_URL"
DATA_ENV = "NEURODESK_TEST_DATA"
CHUNK = 1 << 20
MAX_BYTES = 20 << 30  # a single test file larger than this is surely not what was meant


@dataclass(frozen=True)
class DatasetSource:
    """Where dataset files come from: local directories, the cache, and the download URL."""

    data_dirs: tuple[Path, ...] = ()
    cache: Path | None = None
    url: str | None = DEFAULT_URL
    timeout: float = 60.0

    @classmethod
    def configured(cls, data_dir: Path | None = None, offline: bool = False) -> DatasetSource:
        dirs = [data_dir] if data_dir is not None else []
        if env := os.environ.get(DATA_ENV):
            dirs.append(Path(env))
        url = None if offline else os.environ.get(URL_ENV, DEFAULT_URL)
        return cls(tuple(dirs), Paths.from_env().cache / "openneuro", url)


@dataclass(frozen=True)
class MissingFiles:
    dataset: str
    files: tuple[str, ...]
    reason: str


def _download(url: str, dest: Path, timeout: float) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise OSError(f"not an http(s) URL: {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "neurodesk-test"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as rsp:
            total = 0
            while chunk := rsp.read(CHUNK):
                total += len(chunk)
                if total > MAX_BYTES:
                    raise OSError(f"{url} is larger than {MAX_BYTES >> 30} GiB")
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _find(dataset: str, name: str, source: DatasetSource) -> Path | None:
    for base in (*source.data_dirs, *([source.cache] if source.cache else [])):
        candidate = base / dataset / name
        if candidate.is_file():
            return candidate
    return None


def provide_datasets(
    datasets: list[Dataset], work: Path, source: DatasetSource | None = None
) -> list[MissingFiles]:
    """Copy every required file into ``work/<dataset>/<file>``; return what could not be had."""
    source = source or DatasetSource.configured()
    missing: list[MissingFiles] = []
    for entry in datasets:
        lacking: list[str] = []
        reason = "not in the data directories"
        for name in entry.files:
            found = _find(entry.dataset, name, source)
            if found is None and source.url and source.cache is not None:
                target = source.cache / entry.dataset / name
                url = f"{source.url.rstrip('/')}/{entry.dataset}/{urllib.parse.quote(name)}"
                try:
                    _download(url, target, source.timeout)
                    found = target
                except (OSError, urllib.error.URLError, TimeoutError) as exc:
                    reason = f"download failed: {getattr(exc, 'reason', None) or exc}"
            if found is None:
                lacking.append(name)
                continue
            dest = work / entry.dataset / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, dest)
        if lacking:
            missing.append(MissingFiles(entry.dataset, tuple(lacking), reason))
    return missing
