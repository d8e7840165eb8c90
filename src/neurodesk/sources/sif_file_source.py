"""``neurodesk install NAME --from FILE.sif`` or ``--from https://.../FILE.sif``: one SIF file.

A local file is imported as it is; a URL is downloaded first (resumably, in Range pieces when
the server allows). Nobody published a digest for it: its sha256 is recorded and shown as
unverified-by-publisher.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from neurodesk.errors import NotFoundError
from neurodesk.paths import Paths
from neurodesk.sources.config import Config, SourceConfig
from neurodesk.sources.http import HttpSettings, expect_status, make_client, request
from neurodesk.sources.naming import Available, Spec, split_id
from neurodesk.sources.origins import UNVERIFIED
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.ranged import finish, ranged_download
from neurodesk.sources.sif_store import download_dir, import_sif, sha256_file
from neurodesk.sources.transfer import SourceError, download
from neurodesk.store import ImageRecord


class SifFileSource:
    kind = "sif-file"

    def __init__(self, location: str, insecure: bool, settings: HttpSettings) -> None:
        self.label = location
        self.location = location
        self.insecure = insecure
        self.settings = settings
        self.remote = location.startswith(("http://", "https://"))

    def close(self) -> None:
        pass

    def find(self, spec: Spec) -> Available | None:
        stem = self.location.rsplit("/", 1)[-1].removesuffix(".sif").removesuffix(".simg")
        parts = split_id(stem, spec.name) or ("", "", "")
        version = spec.version or parts[1]
        builddate = spec.builddate or parts[2]
        if not version:
            raise SourceError(
                f"cannot tell the version of {spec.name} in {self.location}",
                hint=f"name it: neurodesk install {spec.name}/VERSION --from {self.location}",
            )
        if not self.remote and not Path(self.location).is_file():
            raise NotFoundError(f"{self.location}: no such file")
        import datetime

        builddate = builddate or datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        return Available(spec.name, version, builddate, self.location)

    def available(self) -> list[Available]:
        return []

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        if not self.remote:
            local = Path(self.location)
            # Hash and import a private copy: the user's file may change while we read it.
            dest = download_dir(paths) / f"{found.id}.sif"
            shutil.copyfile(local, dest)
            digest = sha256_file(dest)
            return import_sif(
                paths, dest, found.name, found.version, found.builddate, "file",
                str(local.absolute()), digest, UNVERIFIED,
            )  # fmt: skip
        dest = download_dir(paths) / f"{found.id}.sif"
        show = progress or NullProgress()
        with make_client(self.settings, self.insecure) as client:
            head = request(client, "HEAD", self.location)
            expect_status(head, 200)
            length = head.headers.get("Content-Length", "")
            ranges = head.headers.get("Accept-Ranges", "") == "bytes" and length.isdigit()
            show.add(found.id, f"{found.id}.sif", int(length) if length.isdigit() else None)
            if ranges:
                digest, _ = ranged_download(
                    [self.location], int(length), dest, self.settings, self.insecure,
                    lambda n: show.advance(found.id, n), per_mirror=4,
                )  # fmt: skip
                finish(dest, digest, None)
            else:
                download(
                    client, self.location, dest, None, None, lambda n: show.advance(found.id, n)
                )
                digest = sha256_file(dest)
        return import_sif(
            paths, dest, found.name, found.version, found.builddate, "url", self.location,
            digest, UNVERIFIED,
        )  # fmt: skip


def from_config(config: SourceConfig, settings: Config, paths: Paths) -> SifFileSource:
    return SifFileSource(config.mirrors[0], config.insecure, settings.http_settings())
