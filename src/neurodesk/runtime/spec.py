"""The RunSpec: everything a runtime needs to run one command, decided in this one place.

Backends (bwrap, apptainer, podman, ...) only translate it; binds, environment and working
directory rules live here so every backend and every wrapper behaves the same.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from neurodesk.errors import NeurodeskError
from neurodesk.runtime.gpu import gpu_setup
from neurodesk.store import ImageRecord

# Host environment passed through despite the clean environment.
PASSTHROUGH_ENV = ("DISPLAY", "TERM", "LANG", "COLORTERM", "XAUTHORITY")
PASSTHROUGH_PREFIXES = ("LC_",)

# Directories that belong to the image: a host directory is never bound over them, so a
# command started in e.g. /usr/share runs in the image's /usr/share instead.
SYSTEM_DIRS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/var",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/run",
)

DEPLOY_ENV_PREFIX = "DEPLOY_ENV_"

# Host variables that set one container variable each, as Apptainer reads them.
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")

# Extra binds, comma-separated ``src[:dst[:ro]]``, read in this order (wrappers read them too).
BINDPATH_VARS = ("NEURODESK_BINDPATH", "APPTAINER_BINDPATH", "SINGULARITY_BINDPATH")


class BindSpecError(NeurodeskError):
    """A bind given as ``src[:dst[:ro|rw]]`` is malformed."""


BIND_OPTIONS = ("ro", "rw")


@dataclass(frozen=True)
class Bind:
    src: str
    dst: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str, origin: str = "--bind") -> Bind:
        """``src[:dst[:ro|rw]]``, as in APPTAINER_BINDPATH; anything else is one clear error."""
        parts = text.split(":")
        hint = "write SRC[:DST[:ro|rw]] with absolute paths, e.g. /data:/data:ro"
        if len(parts) > 3:
            raise BindSpecError(f"{origin} '{text}' has more than three ':' fields", hint=hint)
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and parts[1] else src
        option = parts[2] if len(parts) > 2 else "rw"
        if not src:
            raise BindSpecError(f"{origin} '{text}' names no source path", hint=hint)
        if option not in BIND_OPTIONS:
            raise BindSpecError(
                f"{origin} '{text}': unknown bind option '{option}' (only ro or rw)", hint=hint
            )
        for path in (src, dst):
            if not path.startswith("/") or "\n" in path or "\0" in path:
                raise BindSpecError(
                    f"{origin} '{text}': '{path}' is not an absolute path", hint=hint
                )
        return cls(os.path.normpath(src), os.path.normpath(dst), option == "ro")


@dataclass
class RunSpec:
    rootfs: Path
    argv: list[str]
    cwd: str
    binds: list[Bind] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    gpu: bool = False
    x11: bool = False
    tmp: str = "/tmp"
    # Files made up for the container (path -> content), e.g. /etc/passwd naming the user.
    files: dict[str, str] = field(default_factory=dict)
    # Host device nodes to expose (GPU), each at the same path.
    devices: list[str] = field(default_factory=list)
    image: str = ""  # the image id, for runtimes that need an image name (docker)
    writable_tmpfs: bool = False  # apptainer --writable-tmpfs: writes go to a throwaway tmpfs
    # Called by root: the container runs in a user namespace with every capability dropped.
    drop_privileges: bool = False
    # Extra words for the runtime's command line (NEURODESK_RUNTIME_OPTS), after its own options.
    runtime_opts: list[str] = field(default_factory=list)

    def present_binds(self) -> list[Bind]:
        """The binds whose source exists here: one missing ($TMPDIR or $HOME gone, a bind path
        of another machine) is skipped, by every runtime and every wrapper alike."""
        return [b for b in self.binds if os.path.exists(b.src)]


def is_system_path(path: str) -> bool:
    return path == "/" or any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _covered(bind: Bind, by: Bind) -> bool:
    """True when ``by`` already makes ``bind`` visible at the same place, with the same access."""
    try:
        rel_src = PurePosixPath(bind.src).relative_to(by.src)
        rel_dst = PurePosixPath(bind.dst).relative_to(by.dst)
    except ValueError:
        return False
    return rel_src == rel_dst and by.readonly == bind.readonly


def dedupe_binds(binds: Iterable[Bind]) -> list[Bind]:
    """Drop binds another bind already provides, and earlier binds of the same target.

    The result keeps the order given, except that a bind comes after every bind around it (a
    bind added later that holds earlier ones moves them behind itself), so a read-only input
    inside a read-write $HOME is mounted on top of it and stays read-only. The wrappers apply
    this same rule, one bind at a time (``nd_add``).
    """
    kept: list[Bind] = []
    for bind in binds:
        if any(_covered(bind, k) for k in kept):
            continue
        rest = [k for k in kept if not _covered(k, bind) and k.dst != bind.dst]
        inside = [k for k in rest if _within(k.dst, bind.dst)]
        kept = [k for k in rest if not _within(k.dst, bind.dst)] + [bind] + inside
    return kept


def bindpath_from_env(environ: Mapping[str, str]) -> list[Bind]:
    """Binds from the bind-path variables; empty items (a trailing comma) are ignored."""
    binds: list[Bind] = []
    for var in BINDPATH_VARS:
        binds.extend(Bind.parse(item, var) for item in environ.get(var, "").split(",") if item)
    return binds


def container_env(record: ImageRecord, environ: Mapping[str, str]) -> dict[str, str]:
    """Image environment, DEPLOY_ENV_* applied, plus the few host variables we keep."""
    env = {k: v for k, v in record.env.items() if not k.startswith(DEPLOY_ENV_PREFIX)}
    for key, value in record.env.items():
        if key.startswith(DEPLOY_ENV_PREFIX):
            env[key.removeprefix(DEPLOY_ENV_PREFIX)] = value
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    # Deployed commands are run by name: their directories must be on the container's PATH even
    # when the recipe did not put them there.
    path = env["PATH"].split(":")
    missing = [d for d in record.deploy_env("DEPLOY_PATH") if d not in path]
    if missing:
        env["PATH"] = ":".join([*missing, *path])
    for key, value in environ.items():
        if key in PASSTHROUGH_ENV or key.startswith(PASSTHROUGH_PREFIXES):
            env[key] = value
    return env


def in_image(rootfs: Path, path: str) -> bool:
    """Whether ``path`` exists in the image (without following the image's symlinks)."""
    return os.path.lexists(rootfs / path.lstrip("/"))


def image_has_content(rootfs: Path, path: str) -> bool:
    """``path`` is a real, non-empty directory of the image (not a symlink, not a mount point)."""
    host = rootfs / path.lstrip("/")
    if host.is_symlink() or not host.is_dir():
        return False
    with os.scandir(host) as entries:
        return any(True for _ in entries)


def cwd_needs_bind(rootfs: Path, cwd: str) -> bool:
    """The host's current directory is bound unless the image has its own directory there.

    Under a system directory (/usr, /etc, ...) the image's copy wins when it exists, and so does
    any non-empty directory of the image (``cd /opt`` runs in the image's /opt, whose tools stay
    visible); otherwise (``/usr/local/project``, ``/opt/project``, an empty mount point such as
    ``/data``) the host's is bound so the command starts where it was called.
    """
    if cwd == "/" or (is_system_path(cwd) and in_image(rootfs, cwd)):
        return False
    return not image_has_content(rootfs, cwd)


def _passwd_line(fields: list[str]) -> str:
    return ":".join(fields)


def identity_files(
    rootfs: Path, uid: int, gid: int, user: str, group: str, home: str
) -> dict[str, str]:
    """/etc/passwd and /etc/group for the container, naming the calling user and group.

    Returns nothing when the image already knows them (root, say); otherwise the image's own
    entries plus ours, so ``id -un``, ``whoami`` and tools that look up $USER work.
    """
    files: dict[str, str] = {}
    wanted = {
        "passwd": (user, uid, [user, "x", str(uid), str(gid), user, home, "/bin/sh"]),
        "group": (group, gid, [group, "x", str(gid), ""]),
    }
    for name, (entry, number, fields) in wanted.items():
        kept = id_file_base(image_lines(rootfs, f"etc/{name}"), entry, number)
        if kept is not None:
            files[f"/etc/{name}"] = kept + _passwd_line(fields) + "\n"
    return files


def id_file_base(lines: list[str], name: str, number: int) -> str | None:
    """The image's passwd or group ``lines`` without those of ``name`` or ``number`` (each line
    ending in a newline), or None when the image knows ``name`` with that number already."""
    parsed = [line.split(":") for line in lines]
    if any(len(p) > 2 and p[0] == name and p[2] == str(number) for p in parsed):
        return None
    return "".join(
        line + "\n"
        for line, p in zip(lines, parsed, strict=True)
        if not (len(p) > 2 and (p[0] == name or p[2] == str(number)))
    )


def image_lines(rootfs: Path, rel: str) -> list[str]:
    """The lines of a regular file of the image (never through a symlink of the image), or none.

    ``rootfs`` itself may be a symlink of the store (a SIF's ``rootfs -> mnt/sif``)."""
    path = rootfs / rel
    inside = [p for p in [path, *path.parents] if p.is_relative_to(rootfs) and p != rootfs]
    if any(p.is_symlink() for p in inside):
        return []
    if not path.is_file():
        return []
    return path.read_text(errors="replace").splitlines()


def _safe_name(name: str, fallback: str) -> str:
    """A user or group name fit for a passwd line (no ':' or newline), else ``fallback``."""
    return name if name and not any(c in name for c in ":\n\0") else fallback


def host_identity(environ: Mapping[str, str]) -> tuple[int, int, str, str]:
    """(uid, gid, user name, group name) of the caller, named even without a passwd entry."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = environ.get("USER") or f"user{uid}"
    user = _safe_name(user, f"user{uid}")
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = user
    return uid, gid, user, _safe_name(group, user)


def host_home(environ: Mapping[str, str]) -> str:
    """$HOME, or (unset or empty) the account's home directory, as a login would give."""
    home = environ.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:
        return "/"


def runtime_opts(environ: Mapping[str, str]) -> list[str]:
    """NEURODESK_RUNTIME_OPTS, split into words as a shell would split an unquoted variable."""
    return environ.get("NEURODESK_RUNTIME_OPTS", "").split()


def build_runspec(
    record: ImageRecord,
    argv: list[str],
    *,
    cwd: str | None = None,
    binds: Iterable[Bind] = (),
    env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    gpu: bool | None = None,
    dev_root: Path = Path("/dev"),
    writable: Iterable[str] = (),
) -> RunSpec:
    """The one place that decides what a container sees.

    ``gpu=None`` follows ``NEURODESK_GPU=1``. ``writable`` names host paths the run must be
    able to write even below a read-only bind (a batch's output root).
    """
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    home = host_home(environ)
    tmp = environ.get("TMPDIR") or "/tmp"
    rootfs = record.rootfs
    wanted = [Bind("/tmp", "/tmp"), Bind("/var/tmp", "/var/tmp"), Bind(tmp, tmp), Bind(home, home)]
    x11 = "DISPLAY" in environ
    if x11:
        # The X server's sockets, and the cookie file wherever XAUTHORITY says it is.
        wanted.append(Bind("/tmp/.X11-unix", "/tmp/.X11-unix"))
        if environ.get("XAUTHORITY", "").startswith("/"):
            wanted.append(Bind(environ["XAUTHORITY"], environ["XAUTHORITY"], readonly=True))
    wanted += bindpath_from_env(environ)
    wanted += list(binds)
    if cwd_needs_bind(rootfs, cwd):
        wanted.append(Bind(cwd, cwd))
    run_env = container_env(record, environ)
    run_env["HOME"] = home
    run_env["TMPDIR"] = tmp
    for key, value in environ.items():
        for prefix in ENV_PREFIXES:
            if key.startswith(prefix) and key != prefix:
                run_env[key.removeprefix(prefix)] = value
    if gpu is None:
        gpu = environ.get("NEURODESK_GPU", "") not in ("", "0")
    devices: list[str] = []
    if gpu:
        setup = gpu_setup(dev_root)
        devices = setup.devices
        wanted += [Bind(host, inside, readonly=True) for inside, host in setup.libraries.items()]
        wanted += [Bind(host, inside, readonly=True) for inside, host in setup.tools.items()]
        run_env.update(setup.env(run_env))
    run_env.update(env or {})
    present = wanted + protect_store(record.store_root, wanted, writable)
    if not rootfs.is_relative_to(record.store_root):  # an image used in place (a sandbox tree)
        present += protect_store(rootfs, wanted, writable)
    uid, gid, user, group = host_identity(environ)
    return RunSpec(
        rootfs=rootfs,
        argv=argv,
        cwd=cwd,
        binds=dedupe_binds(present),
        env=run_env,
        gpu=gpu,
        x11=x11,
        tmp=tmp,
        files=identity_files(rootfs, uid, gid, user, group, home),
        devices=devices,
        image=record.id,
        drop_privileges=os.geteuid() == 0,
        runtime_opts=runtime_opts(environ),
    )


def protect_store(store_root: Path, binds: list[Bind], writable: Iterable[str] = ()) -> list[Bind]:
    """Read-only binds of the store wherever a read-write bind would expose it writable."""
    store = os.path.realpath(store_root)
    if any(_within(store, w) for w in writable):
        return []
    out: list[Bind] = []
    for bind in binds:
        if not bind.readonly and _within(store, bind.src):
            inside = os.path.normpath(bind.dst + "/" + os.path.relpath(store, bind.src))
            out.append(Bind(store, inside, readonly=True))
    return out
