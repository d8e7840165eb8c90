"""docker backend: a running Docker engine builds with BuildKit; the image reaches the store as
an OCI layout through ``skopeo copy docker-daemon:`` (or ``docker save``, whose archive is an
OCI layout since Docker 25).

Selected only when the engine answers (``docker version`` reports a server): the docker CLI
without a daemon, as on this machine, is not a builder.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.buildah import DEFAULT_PATH, label_args
from neurodesk.build.builder import Builder, quiet
from neurodesk.build.process import LineHook, run_logged
from neurodesk.errors import ExternalCommandError, MissingToolError
from neurodesk.paths import Paths
from neurodesk.systools import require

# BuildKit's plain progress: "#7 [2/5] RUN apt-get ..." (stage names may precede the counter).
BUILDKIT_STEP = r"^#\d+ \[(?:[^\]]* )?(\d+)/(\d+)\] (.*)$"


class DockerBuilder(Builder):
    name = "docker"
    step_pattern = BUILDKIT_STEP

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        self.exe = require("docker", "build images with Docker")

    @classmethod
    def available(cls) -> bool:
        exe = shutil.which("docker")
        return (
            exe is not None
            and quiet([exe, "version", "--format", "{{.Server.Version}}"], 10).returncode == 0
        )

    def version(self) -> str:
        out = quiet([self.exe, "version", "--format", "{{.Server.Version}}"])
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"

    def image_id(self, ref: str) -> str | None:
        out = quiet([self.exe, "image", "inspect", "--format", "{{.Id}}", ref])
        value = out.stdout.strip()
        return value if out.returncode == 0 and value else None

    def has_image(self, ref: str) -> bool:
        return self.image_id(ref) is not None

    def pull(self, ref: str, log: Path) -> bool:
        try:
            run_logged([self.exe, "pull", "--quiet", ref], log, what="docker pull")
        except ExternalCommandError:
            return False
        return True

    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        run_logged(
            [self.exe, "import", "--change", f"ENV PATH={DEFAULT_PATH}",
             "--change", 'CMD ["/bin/bash"]', str(tarball), ref],
            log,
            what="docker import",
        )  # fmt: skip

    def build_argv(self, context: Path, tag: str, labels: Mapping[str, str]) -> list[str]:
        # Plain progress so every step is a line we can parse; the engine caches steps itself.
        return [
            self.exe, "build", "--progress=plain", *label_args(labels), "-t", tag,
            "-f", str(context / "Dockerfile"), str(context),
        ]  # fmt: skip

    def build(
        self,
        context: Path,
        tag: str,
        labels: Mapping[str, str],
        log: Path,
        on_line: LineHook | None = None,
    ) -> None:
        run_logged(
            self.build_argv(context, tag, labels),
            log,
            on_line,
            what="docker build",
            env={"DOCKER_BUILDKIT": "1"},
        )

    def export_argv(self, ref: str, dest: Path) -> list[str]:
        skopeo = shutil.which("skopeo")
        if skopeo:
            return [skopeo, "copy", "--quiet", f"docker-daemon:{ref}", f"oci:{dest}"]
        return [self.exe, "save", "-o", str(dest.with_suffix(".tar")), ref]

    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        argv = self.export_argv(ref, dest)
        run_logged(argv, log, what="docker export")
        if argv[0] == self.exe:  # docker save: unpack its archive, which must be an OCI layout
            archive = dest.with_suffix(".tar")
            try:
                dest.mkdir(parents=True, exist_ok=True)
                with tarfile.open(archive) as tar:
                    tar.extractall(dest, filter="data")
            finally:
                archive.unlink(missing_ok=True)
            if not (dest / "oci-layout").is_file():
                raise MissingToolError(
                    "this Docker's 'docker save' does not write an OCI layout (Docker < 25)",
                    hint="install skopeo: sudo apt-get install skopeo",
                )

    def remove_image(self, ref: str) -> None:
        quiet([self.exe, "rmi", ref])
