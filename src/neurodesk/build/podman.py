"""podman backend: the same storage library as buildah, driven through ``podman build``.

Measured here: ``podman build --isolation chroot`` works (no OCI runtime is involved), while
``podman run`` needs ``--runtime runc``; the global ``--runtime runc`` is passed when runc is
installed so that anything podman starts uses the runtime that works on this kernel.

podman and buildah share one containers-storage directory (as they do system-wide), so base
images and cached layers made by one are reused by the other.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.buildah import DEFAULT_PATH, BuildahBuilder, label_args, qualify
from neurodesk.build.process import run_logged
from neurodesk.errors import ExternalCommandError
from neurodesk.paths import Paths


class PodmanBuilder(BuildahBuilder):
    name = "podman"
    program = "podman"

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        if runc := shutil.which("runc"):
            self.global_args += ["--runtime", runc]

    def image_id(self, ref: str) -> str | None:
        code, out = self._query("image", "inspect", "--format", "{{.Id}}", qualify(ref))
        if code != 0 or not out:
            return None
        return out if out.startswith("sha256:") else f"sha256:{out}"

    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        run_logged(
            [*self.global_args, "import", "--change", f"ENV PATH={DEFAULT_PATH}",
             "--change", 'CMD ["/bin/bash"]', str(tarball), qualify(ref)],
            log,
            what="podman import",
        )  # fmt: skip

    def pull(self, ref: str, log: Path) -> bool:
        try:
            run_logged([*self.global_args, "pull", "--quiet", qualify(ref)], log, what="pull")
        except ExternalCommandError:
            return False
        return True

    def build_argv(self, context: Path, tag: str, labels: Mapping[str, str]) -> list[str]:
        return [
            *self.global_args, "build", "--isolation", "chroot", "--pull=never", "--layers",
            "--force-rm", *label_args(labels), "-t", tag, "-f", str(context / "Dockerfile"),
            str(context),
        ]  # fmt: skip

    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        run_logged(
            [*self.global_args, "push", "--quiet", ref, f"oci:{dest}"], log, what="podman push"
        )
