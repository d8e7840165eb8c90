"""buildah backend: chroot isolation and overlay storage under NEURODESK_HOME (works unprivileged
of a daemon, and on kernels where the default OCI isolation fails)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.builder import Builder
from neurodesk.build.process import LineHook, run_logged
from neurodesk.paths import Paths
from neurodesk.systools import require

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def qualify(ref: str) -> str:
    """``debian:bookworm`` → ``docker.io/library/debian:bookworm``, as short names resolve."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


class BuildahBuilder(Builder):
    name = "buildah"

    def __init__(self, paths: Paths) -> None:
        self.exe = require("buildah", "build images")
        self.global_args = [
            self.exe,
            "--root", str(paths.buildah_root),
            "--runroot", str(paths.buildah_runroot),
            "--storage-driver", "overlay",
        ]  # fmt: skip

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.global_args, *args], capture_output=True, text=True, check=False
        )

    def version(self) -> str:
        out = subprocess.run([self.exe, "--version"], capture_output=True, text=True, check=False)
        return out.stdout.split()[2] if out.returncode == 0 else "unknown"

    def has_image(self, ref: str) -> bool:
        return self._run("inspect", "--type", "image", qualify(ref)).returncode == 0

    def pull(self, ref: str, log: Path) -> bool:
        try:
            run_logged([*self.global_args, "pull", "--quiet", qualify(ref)], log, what="pull")
        except Exception:
            return False
        return True

    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        from_out = self._run("from", "scratch")
        container = from_out.stdout.strip()
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
            self._run("rm", container)

    def build(
        self,
        context: Path,
        tag: str,
        labels: Mapping[str, str],
        log: Path,
        on_line: LineHook | None = None,
    ) -> None:
        label_args = [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]
        run_logged(
            [*self.global_args, "bud", "--isolation", "chroot", "--pull=false", "--layers",
             *label_args, "-t", tag, "-f", str(context / "Dockerfile"), str(context)],
            log,
            on_line,
            what="buildah bud",
        )  # fmt: skip

    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        run_logged(
            [*self.global_args, "push", "--quiet", "--disable-compression", ref, f"oci:{dest}"],
            log,
            what="buildah push",
        )
