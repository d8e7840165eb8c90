"""Rendering the per-command wrapper script: the shell rendition of runtime/spec.py's rules.

One template (``wrapper.sh.j2``, POSIX sh) holds what every runtime shares: finding the image,
the "prepare the root" step (``wrapper_prepare.sh.j2``), the choice of runtime, binds, identity
and environment. Each runtime adds one template that turns those decisions into its command
line and runs it (``wrapper_bwrap.sh.j2``, under the signal-forwarding launcher of
``runtime/launcher.py``; ``wrapper_apptainer.sh.j2``). The constants come from the runtime
package, so ``neurodesk exec`` and a wrapper decide alike; what does not depend on the call is
decided here, at install time, and written into the wrapper as it is.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from neurodesk import __version__
from neurodesk.install.layout import STORE_LINK, UP_TO_PREFIX
from neurodesk.install.templating import render
from neurodesk.install.validate import check_command
from neurodesk.runtime.bwrap import RUNTIME_DIRS
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
    host_identity,
    id_file_base,
    image_lines,
)
from neurodesk.store import ImageRecord
from neurodesk.store.sifmount import prepare_step

# Words of the wrappers' lists are joined by this byte and split on it when the runtime starts.
US = "\x1f"
# Stands for the image's root in a word until it is written as the shell's "$nd_root".
_ROOT = "\0"


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


def _words(words: list[str]) -> str:
    """A shell word holding ``words`` joined by US, where _ROOT reads as "$nd_root"."""
    text = "".join(w + US for w in words)
    return '"$nd_root"'.join(shlex.quote(chunk) for chunk in text.split(_ROOT) if chunk) or "''"


def _layout(entries: list[tuple[str, str, str]]) -> str:
    words: list[str] = []
    for kind, name, target in entries:
        if kind == "symlink":
            words += ["--symlink", target, f"/{name}"]
        elif kind == "dir":
            words += ["--dir", f"/{name}"]
        else:
            words += ["--ro-bind", f"{_ROOT}/{name}", f"/{name}"]
    return _words(words)


def _splay_case(entries: list[tuple[str, str, str]]) -> str:
    """A case pattern for paths below the image's non-empty top-level directories."""
    names = [shlex.quote(f"/{name}") + "/*" for kind, name, _ in entries if kind == "bind"]
    return "|".join(names) or "/*/*/../.."  # no such directory: a pattern no path matches


def _caller() -> tuple[int, str, int, str]:
    uid, gid, user, group = host_identity(os.environ)
    return uid, user, gid, group


def _uid_map() -> str:
    """The first line of this process's user-id mapping, as ``read -r`` in sh gives it."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.readline().strip()
    except OSError:
        return "unknown"


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
    Everything that does not depend on the call is decided here: the image's layout, its
    environment, and the identity files for the user who installs (the usual caller).
    """
    check_command(command)
    static_env = sorted(container_env(record, {}).items())
    passwd = image_lines(record.rootfs, "etc/passwd")
    group = image_lines(record.rootfs, "etc/group")
    uid, user, gid, group_name = _caller()
    entries = top_level(record.rootfs)
    env = dict(static_env)
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
        us=US,
        static_env_bwrap=_words([w for k, v in static_env for w in ("--setenv", k, v)]),
        static_env_apptainer=_words(
            [w for k, v in static_env if k != "HOME" for w in ("--env", f"{k}={v}")]
        ),
        image_path=env.get("PATH", ""),
        image_ld_path=env.get("LD_LIBRARY_PATH", ""),
        passthrough_env=PASSTHROUGH_ENV,
        bindpath_vars=BINDPATH_VARS,
        system_case="|".join(f"{d}|{d}/*" for d in SYSTEM_DIRS),
        layout=_layout(entries),
        top_records="".join(f"{k}{US}{n}{US}{t}\n" for k, n, t in entries),
        splay_case=_splay_case(entries),
        install_uid=uid,
        install_uid_map=_uid_map(),
        install_user=user,
        install_gid=gid,
        install_group=group_name,
        install_passwd=id_file_base(passwd, user, uid),
        install_group_file=id_file_base(group, group_name, gid),
        image_passwd="".join(line + "\n" for line in passwd),
        image_group="".join(line + "\n" for line in group),
        image_users=_pairs(passwd),
        image_groups=_pairs(group),
        gpu_default=gpu,
        gpu_device_globs=_globs(("/dev",), DEVICE_PATTERNS),
        gpu_library_globs=_globs(HOST_LIB_DIRS, LIBRARY_PATTERNS),
        gpu_tools=TOOLS,
        gpu_bin_dirs=HOST_BIN_DIRS,
        gpu_lib_dir=GPU_LIB_DIR,
        gpu_bin_dir=GPU_BIN_DIR,
    )
