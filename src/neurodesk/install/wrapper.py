"""Rendering the per-command wrapper script: the shell rendition of runtime/spec.py's rules.

One template (``wrapper.sh.j2``) holds what every runtime shares: finding the image, the
"prepare the root" step (``wrapper_prepare.sh.j2``), the choice of runtime, binds, identity,
environment and the signal forwarder. Each runtime adds one template that turns those
decisions into its command line (``wrapper_bwrap.sh.j2``, ``wrapper_apptainer.sh.j2``). The
constants come from the runtime package, so ``neurodesk exec`` and a wrapper decide alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from neurodesk import __version__
from neurodesk.install.layout import STORE_LINK, UP_TO_PREFIX
from neurodesk.install.templating import render
from neurodesk.install.validate import check_command
from neurodesk.runtime.bwrap import RUNTIME_DIRS
from neurodesk.runtime.forward import forwarder_script
from neurodesk.runtime.gpu import (
    DEVICE_PATTERNS,
    GPU_BIN_DIR,
    GPU_LIB_DIR,
    HOST_BIN_DIRS,
    HOST_LIB_DIRS,
    LIBRARY_PATTERNS,
    TOOLS,
)
from neurodesk.runtime.spec import (
    BINDPATH_VARS,
    PASSTHROUGH_ENV,
    SYSTEM_DIRS,
    container_env,
    image_lines,
)
from neurodesk.store import ImageRecord
from neurodesk.store.sifmount import prepare_step

# The background job gets the made-up /etc/passwd and /etc/group on fds 3 and 4.
_LAUNCH = """if [ "$nd_rt" = bwrap ]; then
  set -- "${{nd_a[@]}}" "$nd_cmd" "$@"
{forwarder}fi
exec "${{nd_a[@]}}" "$nd_cmd" "$@"
"""


def rootfs_in_store(record: ImageRecord) -> str | None:
    """The image's root filesystem relative to its store (``images/<hex>/rootfs``), if inside.

    Images used in place (a sandbox directory on CVMFS, say) live outside the store: wrappers
    refer to those by their fixed location.
    """
    if not record.rootfs.is_relative_to(record.store_root):
        return None
    return os.path.relpath(record.rootfs, record.store_root)


def top_level(rootfs: Path) -> list[tuple[str, str, str]]:
    """(kind, name, symlink target) per top-level entry of the image, as bwrap lays it out."""
    out: list[tuple[str, str, str]] = []
    for entry in sorted(os.scandir(rootfs), key=lambda e: e.name):
        if entry.name in RUNTIME_DIRS:
            continue
        if entry.is_symlink():
            out.append(("symlink", entry.name, os.readlink(entry.path)))
        elif entry.is_dir(follow_symlinks=False) and not any(os.scandir(entry.path)):
            out.append(("dir", entry.name, ""))
        else:
            out.append(("bind", entry.name, ""))
    return out


def _pairs(lines: list[str]) -> str:
    """`` name:id name:id `` of a passwd or group file, for a quick match in the wrapper."""
    fields = [line.split(":") for line in lines]
    return " " + "".join(f"{f[0]}:{f[2]} " for f in fields if len(f) > 2)


def _globs(dirs: tuple[str, ...], patterns: tuple[str, ...]) -> str:
    return " ".join(f"{d}/{p}" for d in dirs for p in patterns)


def render_wrapper(
    record: ImageRecord,
    command: str,
    wrapper_dir: Path | None = None,
    root_beside: str | None = None,
    gpu: bool = False,
) -> str:
    """The wrapper for ``command``. ``wrapper_dir`` is unused: every path is relative.

    ``root_beside`` places the image's root filesystem relative to the wrapper's own directory
    (a published tree keeps the sandbox next to its wrappers) instead of in the store. ``gpu``
    makes NVIDIA GPUs visible by default (``NEURODESK_GPU=0`` turns it off per call).
    """
    check_command(command)
    static_env = container_env(record, {})
    passwd = image_lines(record.rootfs, "etc/passwd")
    group = image_lines(record.rootfs, "etc/group")
    return render(
        "wrapper.sh.j2",
        command=command,
        image_id=record.id,
        name=record.name,
        version=record.version,
        neurodesk_version=__version__,
        up_to_prefix=UP_TO_PREFIX,
        store_link=STORE_LINK,
        root_beside=root_beside,
        rootfs_in_store=rootfs_in_store(record),
        rootfs_at_install=str(record.rootfs),
        store_at_install=os.path.realpath(record.store_root),
        prepare_root=None if record.external_rootfs else prepare_step(record.image_dir),
        static_env=sorted(static_env.items()),
        passthrough_env=PASSTHROUGH_ENV,
        bindpath_vars=BINDPATH_VARS,
        system_case="|".join(f"{d}|{d}/*" for d in SYSTEM_DIRS),
        top_level=top_level(record.rootfs),
        image_passwd="\n".join(passwd),
        image_group="\n".join(group),
        image_users=_pairs(passwd),
        image_groups=_pairs(group),
        gpu_default=gpu,
        gpu_device_globs=_globs(("/dev",), DEVICE_PATTERNS),
        gpu_library_globs=_globs(HOST_LIB_DIRS, LIBRARY_PATTERNS),
        gpu_tools=TOOLS,
        gpu_bin_dirs=HOST_BIN_DIRS,
        gpu_lib_dir=GPU_LIB_DIR,
        gpu_bin_dir=GPU_BIN_DIR,
        forwarder=_LAUNCH.format(
            forwarder=forwarder_script('3<<<"${nd_ids[1]:-}" 4<<<"${nd_ids[3]:-}" ')
        ),
    )
