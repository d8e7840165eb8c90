"""Rendering the per-command wrapper script: the shell rendition of runtime/spec.py's rules.

One template (``wrapper.sh.j2``, POSIX sh) holds what every runtime shares: finding the image,
the "prepare the root" step (``wrapper_prepare.sh.j2``), the choice of runtime, binds, identity
and environment. Each runtime adds one template that turns those decisions into its command
line and runs it (``wrapper_bwrap.sh.j2``, under the signal-forwarding launcher of
``runtime/launcher.py``; ``wrapper_apptainer.sh.j2``). The constants come from the runtime
package, so ``neurodesk exec`` and a wrapper decide alike; what does not depend on the call is
decided here, at install time, and written into the wrapper as it is.

Start time: dash spends about 45 instructions on every byte of script it reads, comments
included, so the wrappers are rendered without the templates' comment lines, and the helpers
of the rarer cases (``wrapper_more.sh.j2``) go into a file of their own beside the wrappers
(:func:`render_wrapper_more`), read only by a call that needs them. A wrapper rendered without
that file (a published tree's) carries them as a string it evaluates when needed.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import jinja2

from neurodesk import __version__
from neurodesk.install.layout import STORE_LINK, UP_TO_PREFIX
from neurodesk.install.templating import _ENV
from neurodesk.install.validate import check_command
from neurodesk.runtime.bwrap import PRIVILEGES_DROPPED, RUNTIME_DIRS, image_args, splay_points
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
    Bind,
    container_env,
    dedupe_binds,
    host_identity,
    id_file_base,
    image_lines,
    protect_store,
)
from neurodesk.store import ImageRecord
from neurodesk.store.sifmount import prepare_step

# Words of the wrappers' lists are joined by this byte and split on it when the runtime starts.
US = "\x1f"
# Stands for the image's root in a word until it is written as the shell's "$nd_root".
_ROOT = "\0"
# The rare cases' helpers, beside the wrappers in their bin directory: not executable, and
# hidden, so nothing takes it for a command.
MORE_FILE = ".neurodesk-wrapper-more.sh"
# A whole-line sh comment of a template (not the "#!" line, not a Jinja tag).
_COMMENT_LINE = re.compile(r"^[ \t]*#(?![!%]).*\n", re.MULTILINE)


class _UncommentedLoader(jinja2.BaseLoader):
    """The wrapper templates without their comment lines (they stay in the sources)."""

    def __init__(self, inner: jinja2.BaseLoader) -> None:
        self.inner = inner

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        head, newline, rest = source.partition("\n")  # the first line: "#!/bin/sh" or a title
        if template == "wrapper.sh.j2":  # and its second: what the file is, who wrote it
            second, newline2, rest = rest.partition("\n")
            head, newline = head + newline + second, newline2
        return head + newline + _COMMENT_LINE.sub("", rest), filename, uptodate


assert _ENV.loader is not None
_SH_ENV = _ENV.overlay(loader=_UncommentedLoader(_ENV.loader))


def _render(template: str, **context: Any) -> str:
    return _SH_ENV.get_template(template).render(**context)


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


def _layout(entries: list[tuple[str, str, str]]) -> list[str]:
    words: list[str] = []
    for kind, name, target in entries:
        if kind == "symlink":
            words += ["--symlink", target, f"/{name}"]
        elif kind == "dir":
            words += ["--dir", f"/{name}"]
        else:
            words += ["--ro-bind", f"{_ROOT}/{name}", f"/{name}"]
    return words


def _split_common(a: list[str], b: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """``a`` and ``b`` as their common head, their own middles and their common tail (the
    wrapper writes the shared words once: every byte costs dash time to read)."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return a[:head], a[head : len(a) - tail], b[head : len(b) - tail], a[len(a) - tail :]


def _splay_names(entries: list[tuple[str, str, str]]) -> str:
    """`` /name /name `` of the image's top-level entries bound whole (a path below one needs
    a mount point there), for a one-pattern match in the wrapper."""
    return " " + "".join(f"/{name} " for kind, name, _ in entries if kind == "bind")


def _foreseen_splay(record: ImageRecord, home: str | None) -> list[str]:
    """The image directories the install user's usual call splays, in the order the wrapper
    finds them: those its ``$HOME`` needs, then those the store's read-only bind needs when a
    read-write bind (``$HOME``, the temporary directories) holds the store."""
    if not home or not home.startswith("/"):
        return []
    home = os.path.normpath(home)
    store = os.path.realpath(record.store_root)
    targets = [home]
    if any(store == d or store.startswith(d.rstrip("/") + "/") for d in (home, "/tmp", "/var/tmp")):
        targets.append(store)
    order: list[str] = []
    for target in targets:
        for point in sorted(splay_points(record.rootfs, [target]), key=len):
            if point not in order:
                order.append(point)
    return order


def _fast_path(
    record: ImageRecord,
    entries: list[tuple[str, str, str]],
    layout: list[str],
    layout0: list[str],
    splay0: list[str],
    ids: tuple[int, str, int, str],
    passwd: str | None,
    group: str | None,
) -> dict[str, Any] | None:
    """What the common call's fast path needs, decided now as the full logic would decide it
    per call, or None where install time does not allow one (see wrapper.sh.j2: the guard
    checks that a call's inputs are those assumed here)."""
    home = os.environ.get("HOME", "")
    store = os.path.realpath(record.store_root)
    uid, user, gid, group_name = ids
    plain = re.compile(r"/[A-Za-z0-9._+@/-]*")
    if (
        rootfs_in_store(record) is None
        or not plain.fullmatch(home)
        or home == "/"
        or os.path.normpath(home) != home
        or not plain.fullmatch(store)
        or not re.fullmatch(r"[A-Za-z0-9._-]+", f"{user}{group_name}")
    ):
        return None
    rootfs = record.rootfs
    # the RunSpec's own rules (what the wrapper's nd_add and nd_protect apply per call)
    rw = dedupe_binds([Bind("/tmp", "/tmp"), Bind("/var/tmp", "/var/tmp"), Bind(home, home)])
    protected = dedupe_binds([*rw, *protect_store(Path(store), rw)])
    base = len(rw)
    records = [("1" if b.readonly else "0", b.src, b.dst) for b in protected]
    bind_names = _splay_names(entries)
    targets = [
        dst
        for _ro, _src, dst in records
        if "/" in dst[1:]
        and f" /{dst[1:].split('/')[0]} " in bind_names
        and not os.path.lexists(f"{rootfs}{dst}")
    ]
    for text, rel in ((passwd, "/etc/passwd"), (group, "/etc/group")):
        if text is not None and not os.path.lexists(f"{rootfs}{rel}"):
            targets.append(rel)
    splay = splay_points(rootfs, targets)
    if not splay:
        words = layout
    elif splay == set(splay0):
        words = layout0
    else:
        return None  # laid out per call (nd_lay_top): the full logic
    if uid == 0:
        words = [*PRIVILEGES_DROPPED, *words]

    def binds(part: list[tuple[str, str, str]]) -> list[str]:
        return [w for ro, s, d in part for w in ("--ro-bind" if ro == "1" else "--bind", s, d)]

    data = []
    if passwd is not None:
        data += ["--ro-bind-data", "3", "/etc/passwd"]
    if group is not None:
        data += ["--ro-bind-data", "4", "/etc/group"]
    # A working directory under $HOME or /tmp is already bound; one under another top-level
    # name the image has nothing at (or an empty directory) gets its own bind, between the
    # read-write binds and the store's read-only ones; anything else takes the full logic.
    home_in_image = os.path.lexists(f"{rootfs}{home}")
    names = [*SYSTEM_DIRS, *(f"/{n}" for k, n, _ in entries if k != "dir")]
    names += [f"/{d}" for d in sorted(RUNTIME_DIRS)]
    own = " / " + " ".join(dict.fromkeys(names)) + " "
    return {
        "home": home,
        "home_in_image": home_in_image,
        "store": store,
        "sources": [s for _ro, s, _d in records],
        "own_names": own,
        "head": _words(
            [
                "bwrap",
                "--die-with-parent",
                *words,
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                *binds(records[:base]),
            ]
        ),
        "tail": _words([*binds(records[base:]), *data, "--chdir"]),
        "passwd": None
        if passwd is None
        else passwd + f"{user}:x:{uid}:{gid}:{user}:{home}:/bin/sh",
        "group": None if group is None else group + f"{group_name}:x:{gid}:",
        "key": f"{uid}:{uid}:{gid}:/tmp:{home}",
        "env_tail": _words(["--setenv", "HOME", home, "--setenv", "TMPDIR", "/tmp"]),
    }


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


def _more_context(record: ImageRecord) -> dict[str, Any]:
    """What the rare cases' helpers need from install time."""
    env = dict(container_env(record, {}))
    passwd = image_lines(record.rootfs, "etc/passwd")
    group = image_lines(record.rootfs, "etc/group")
    return {
        "image_passwd": "".join(line + "\n" for line in passwd),
        "image_group": "".join(line + "\n" for line in group),
        "image_users": _pairs(passwd),
        "image_groups": _pairs(group),
        "image_path": env.get("PATH", ""),
        "image_ld_path": env.get("LD_LIBRARY_PATH", ""),
        "top_records": "".join(f"{k}{US}{n}{US}{t}\n" for k, n, t in top_level(record.rootfs)),
        "gpu_device_globs": _globs(("/dev",), DEVICE_PATTERNS),
        "gpu_library_globs": _globs(HOST_LIB_DIRS, LIBRARY_PATTERNS),
        "gpu_tools": TOOLS,
        "gpu_bin_dirs": HOST_BIN_DIRS,
        "gpu_lib_dir": GPU_LIB_DIR,
        "gpu_bin_dir": GPU_BIN_DIR,
    }


def render_wrapper_more(record: ImageRecord) -> str:
    """The file of the rare cases' helpers that the wrappers of ``record`` read when needed
    (:data:`MORE_FILE`, beside them); sh to be sourced, so not executable."""
    return _render(
        "wrapper_more.sh.j2",
        image_id=record.id,
        name=record.name,
        version=record.version,
        up_to_prefix=UP_TO_PREFIX,
        store_link=STORE_LINK,
        **_more_context(record),
    )


def render_wrapper(
    record: ImageRecord,
    command: str,
    wrapper_dir: Path | None = None,
    root_beside: str | None = None,
    gpu: bool = False,
    more_file: str | None = None,
) -> str:
    """The wrapper for ``command``. ``wrapper_dir`` is unused: every path is relative.

    ``root_beside`` places the image's root filesystem relative to the wrapper's own directory
    (a published tree keeps the sandbox next to its wrappers) instead of in the store. ``gpu``
    makes NVIDIA GPUs visible by default (``NEURODESK_GPU=0`` turns it off per call).
    ``more_file`` names the file beside the wrapper that holds the rare cases' helpers
    (:func:`render_wrapper_more`); without it the wrapper carries them itself.
    Everything that does not depend on the call is decided here: the image's layout, its
    environment, the identity files for the user who installs (the usual caller), and the
    image directories that user's ``$HOME`` and store make the runtime splay.
    """
    check_command(command)
    static_env = sorted(container_env(record, {}).items())
    splay0 = _foreseen_splay(record, os.environ.get("HOME"))
    entries = top_level(record.rootfs)
    layout = _layout(entries)
    layout0 = image_args(record.rootfs, root_expr=_ROOT, splay=splay0)[:-4]  # no --dev, --proc
    head: list[str] = []
    middle, middle0, tail = layout, head, head
    if splay0:
        head, middle, middle0, tail = _split_common(layout, layout0)
    passwd = image_lines(record.rootfs, "etc/passwd")
    group = image_lines(record.rootfs, "etc/group")
    uid, user, gid, group_name = _caller()
    install_passwd = id_file_base(passwd, user, uid)
    install_group_file = id_file_base(group, group_name, gid)
    fast = None
    if not gpu and root_beside is None:
        fast = _fast_path(
            record,
            entries,
            layout,
            layout0,
            splay0,
            (uid, user, gid, group_name),
            install_passwd,
            install_group_file,
        )
    return _render(
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
        passthrough_env=PASSTHROUGH_ENV,
        bindpath_vars=BINDPATH_VARS,
        system_names=" ".join(SYSTEM_DIRS),
        layout_head=_words(head),
        layout_middle=_words(middle),
        layout_tail=_words(tail),
        splay0="".join(f"\n{p}" for p in splay0) + "\n" if splay0 else "",
        layout0_middle=_words(middle0),
        more_file=more_file,
        splay_names=_splay_names(entries),
        install_uid=uid,
        install_uid_map=_uid_map(),
        install_user=user,
        install_gid=gid,
        install_group=group_name,
        install_passwd=install_passwd,
        install_group_file=install_group_file,
        fast=fast,
        gpu_default=gpu,
        **_more_context(record),
    )
