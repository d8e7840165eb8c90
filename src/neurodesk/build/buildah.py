"""buildah backend: chroot isolation and overlay storage under NEURODESK_HOME (no daemon, and it
works on kernels where the default OCI isolation fails on cgroups)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.buildah_storage import export_from_storage
from neurodesk.build.builder import Builder, SkipLayers, quiet
from neurodesk.build.process import LineHook, run_logged
from neurodesk.errors import ExternalCommandError
from neurodesk.paths import Paths
from neurodesk.systools import require

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def qualify(ref: str) -> str:
    """``debian:bookworm`` → ``docker.io/library/debian:bookworm``, as short names resolve."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def label_args(labels: Mapping[str, str]) -> list[str]:
    return [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]


class BuildahBuilder(Builder):
    name = "buildah"
    step_pattern = r"^STEP (\d+)/(\d+): (.*)$"
    program = "buildah"

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        self.exe = require(self.program, "build images")
        self.global_args = [
            self.exe,
            "--root", str(self.storage_root),
            "--runroot", str(self.storage_runroot),
            "--storage-driver", "overlay",
        ]  # fmt: skip

    @property
    def storage_root(self) -> Path:
        return self.paths.buildah_root

    @property
    def storage_runroot(self) -> Path:
        return self.paths.buildah_runroot

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.program) is not None

    def _query(self, *args: str) -> tuple[int, str]:
        out = quiet([*self.global_args, *args])
        return out.returncode, out.stdout.strip()

    def version(self) -> str:
        out = quiet([self.exe, "--version"])
        words = out.stdout.split()
        return words[2] if out.returncode == 0 and len(words) > 2 else "unknown"

    def has_image(self, ref: str) -> bool:
        return self.image_id(ref) is not None

    def image_id(self, ref: str) -> str | None:
        code, out = self._query(
            "inspect", "--type", "image", "--format", "{{.FromImageID}}", qualify(ref)
        )
        if code != 0 or not out:
            return None
        return out if out.startswith("sha256:") else f"sha256:{out}"

    def pull(self, ref: str, log: Path) -> bool:
        try:
            run_logged([*self.global_args, "pull", "--quiet", qualify(ref)], log, what="pull")
        except ExternalCommandError:
            return False
        return True

    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        code, container = self._query("from", "scratch")
        if code != 0:
            raise ExternalCommandError("buildah from scratch failed", hint=f"see {log}")
        try:
            run_logged([*self.global_args, "add", container, str(tarball), "/"], log, what="add")
            run_logged(
                [*self.global_args, "config", "--env", f"PATH={DEFAULT_PATH}",
                 "--cmd", "/bin/bash", container],
                log,
                what="config",
            )  # fmt: skip
            run_logged([*self.global_args, "commit", container, qualify(ref)], log, what="commit")
        finally:
            self._query("rm", container)

    def build_argv(self, context: Path, tag: str, labels: Mapping[str, str]) -> list[str]:
        # --layers: one cached image per step, so an unchanged step is reused; --force-rm: a
        # failed step leaves no working container behind.
        return [
            *self.global_args, "bud", "--isolation", "chroot", "--pull=false", "--layers",
            "--force-rm", *label_args(labels), "-t", tag, "-f", str(context / "Dockerfile"),
            str(context),
        ]  # fmt: skip

    def build(
        self,
        context: Path,
        tag: str,
        labels: Mapping[str, str],
        log: Path,
        on_line: LineHook | None = None,
    ) -> None:
        run_logged(self.build_argv(context, tag, labels), log, on_line, what=f"{self.name} build")

    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        # Uncompressed: the store unpacks right away, and gzip would cost more than it saves.
        run_logged(
            [*self.global_args, "push", "--quiet", "--disable-compression", ref, f"oci:{dest}"],
            log,
            what="buildah push",
        )

    def export_layers(self, ref: str, dest: Path, skip: SkipLayers) -> bool:
        code, out = self._query("inspect", "--type", "image", ref)
        try:
            inspect = json.loads(out) if code == 0 else None
        except ValueError:
            inspect = None
        if not isinstance(inspect, dict):
            return False
        return export_from_storage(inspect, self.storage_root, dest, skip)

    def remove_image(self, ref: str) -> None:
        self._query("rmi", ref)
