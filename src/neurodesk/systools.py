"""Finding the system programs we drive, with an install hint when one is missing."""

from __future__ import annotations

import shutil

from neurodesk.errors import MissingToolError

# program -> Debian/Ubuntu package that provides it
PACKAGES: dict[str, str] = {
    "bwrap": "bubblewrap",
    "buildah": "buildah",
    "debootstrap": "debootstrap",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "podman": "podman",
    "dcm2niix": "dcm2niix",
    "tar": "tar",
}


def require(program: str, why: str = "") -> str:
    """Return the absolute path of ``program`` or raise a one-line error naming its package."""
    found = shutil.which(program)
    if found:
        return found
    package = PACKAGES.get(program, program)
    purpose = f" (needed to {why})" if why else ""
    raise MissingToolError(
        f"'{program}' is not installed{purpose}",
        hint=f"install it with: sudo apt-get install {package}",
    )
