"""The desktop session's application menu, read from the XDG menu our installs write.

``neurodesk install`` writes, under a prefix, ``etc/xdg/menus/applications-merged/neurodesk.menu``
(one folder per category, each including the entries of an ``X-Neurodesk-*`` category),
``share/desktop-directories/*.directory`` and ``share/applications/*.desktop``. This module reads
exactly that (the parts of the menu specification our menu file uses) and renders it for the
session's menu programs: jgmenu (the panel's "Applications" button) and Openbox (a right click on
the desktop, as a pipe menu). Both call back ``python -m neurodesk.desktop.xmenu launch FILE``,
so only a .desktop path ever goes into a menu command; the entry's ``Exec`` is parsed here, per
the desktop entry specification, and run without a shell (``Terminal=true`` in an xterm).

    python -m neurodesk.desktop.xmenu jgmenu PREFIX...
    python -m neurodesk.desktop.xmenu openbox PREFIX...
    python -m neurodesk.desktop.xmenu launch FILE.desktop
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from neurodesk.desktop.labels import category_label
from neurodesk.install.layout import MENU_FILE

FIELD_CODES = {"%f", "%F", "%u", "%U", "%d", "%D", "%n", "%N", "%i", "%c", "%k", "%v", "%m"}
TERMINAL = ("xterm", "-fa", "DejaVu Sans Mono", "-fs", "11", "-geometry", "100x30")
# The bash rc file of the desktop's terminals (the same as JupyterLab's terminals).
BASHRC_ENV = "NEURODESK_SESSION_BASHRC"


def terminal_argv(bashrc: Path | None) -> list[str]:
    """An xterm with the shell of JupyterLab's terminals (tools on PATH, modules ready)."""
    shell = ["bash", "--rcfile", str(bashrc), "-i"] if bashrc else ["bash", "-i"]
    return [*TERMINAL, "-T", "Terminal", "-e", *shell]


@dataclass
class Entry:
    name: str
    comment: str
    path: Path
    terminal: bool


@dataclass
class Folder:
    title: str
    entries: list[Entry] = field(default_factory=list)


def read_desktop_file(path: Path) -> dict[str, str]:
    """The ``[Desktop Entry]`` group of a desktop file, values unescaped (\\s \\n \\t \\\\)."""
    values: dict[str, str] = {}
    group = ""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep and group == "Desktop Entry":
            values[key.strip()] = _unescape(value.strip())
    return values


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
        else:
            out.append(char)
    return "".join(out)


def exec_argv(value: str) -> list[str]:
    """An ``Exec`` value as argv: double-quoted arguments, field codes dropped, ``%%`` → ``%``."""
    argv: list[str] = []
    word: list[str] | None = None
    quoted = False
    chars = iter(value)
    for char in chars:
        if quoted:
            if char == "\\":
                word = (word or []) + [next(chars, "")]
            elif char == '"':
                quoted = False
            else:
                word = (word or []) + [char]
        elif char == '"':
            quoted, word = True, word or []
        elif char in " \t":
            if word is not None:
                argv.append("".join(word))
            word = None
        else:
            word = (word or []) + [char]
    if quoted:
        raise ValueError(f"unterminated quote in Exec={value!r}")
    if word is not None:
        argv.append("".join(word))
    return [a.replace("%%", "%") for a in argv if a not in FIELD_CODES]


def read_menu(prefix: Path) -> list[Folder]:
    """The category folders of a prefix's menu, each with its entries, sorted by name."""
    menu_file = prefix / MENU_FILE
    try:
        root = ET.parse(menu_file).getroot()
    except (OSError, ET.ParseError):
        return []
    app_dir = (menu_file.parent / (root.findtext("AppDir") or "")).resolve()
    directory_dir = (menu_file.parent / (root.findtext("DirectoryDir") or "")).resolve()
    desktop_files = sorted(app_dir.glob("*.desktop")) if app_dir.is_dir() else []
    entries = [(p, read_desktop_file(p)) for p in desktop_files]
    folders = []
    for top in root.findall("Menu"):
        for sub in top.findall("Menu"):
            category = sub.findtext("Include/Category") or ""
            directory = read_desktop_file(directory_dir / (sub.findtext("Directory") or ""))
            title = directory.get("Name") or sub.findtext("Name") or category
            folder = Folder(category_label(title))
            for path, values in entries:
                categories = values.get("Categories", "").split(";")
                hidden = values.get("NoDisplay") == "true" or values.get("Hidden") == "true"
                if category in categories and not hidden and values.get("Type") == "Application":
                    folder.entries.append(
                        Entry(
                            values.get("Name", path.stem),
                            values.get("Comment", ""),
                            path,
                            values.get("Terminal") == "true",
                        )
                    )
            if folder.entries:
                folder.entries.sort(key=lambda e: e.name.lower())
                folders.append(folder)
    return sorted(folders, key=lambda f: f.title.lower())


def merged_menu(prefixes: list[Path]) -> list[Folder]:
    """Folders of several prefixes (a user's and a site's), merged by title."""
    merged: dict[str, Folder] = {}
    for prefix in prefixes:
        for folder in read_menu(prefix):
            merged.setdefault(folder.title, Folder(folder.title)).entries.extend(folder.entries)
    return sorted(merged.values(), key=lambda f: f.title.lower())


def _launch_command(path: Path) -> str:
    return shlex.join([sys.executable, "-m", "neurodesk.desktop.xmenu", "launch", str(path)])


def _plain(text: str) -> str:
    """One line of label text without the characters jgmenu's CSV gives a meaning to."""
    return " ".join(text.replace(",", " ").replace('"', "'").split()).lstrip("^")


def render_jgmenu(folders: list[Folder], terminal: str) -> str:
    """jgmenu's CSV: categories at the top, each opening its tools; a terminal first."""
    lines = [f"Terminal,{terminal},utilities-terminal", "^sep()"]
    for number, folder in enumerate(folders):
        lines.append(f"{_plain(folder.title)},^checkout(nd{number}),folder")
    if not folders:
        lines.append("No tools installed yet,true")
    for number, folder in enumerate(folders):
        lines += ["", f"^tag(nd{number})"]
        for entry in folder.entries:
            command = _launch_command(entry.path)
            if '"""' in command or "\n" in command:
                continue
            icon = "utilities-terminal" if entry.terminal else "applications-science"
            lines.append(f'{_plain(entry.name)},"""{command}""",{icon}')
    return "\n".join(lines) + "\n"


def render_openbox(folders: list[Folder], terminal: str) -> str:
    """An Openbox pipe menu with the same content."""
    out = ["<openbox_pipe_menu>"]
    out.append(_ob_item("Terminal", terminal))
    out.append("<separator/>")
    for number, folder in enumerate(folders):
        out.append(f"<menu id={quoteattr(f'nd-{number}')} label={quoteattr(folder.title)}>")
        out += [_ob_item(e.name, _launch_command(e.path)) for e in folder.entries]
        out.append("</menu>")
    out.append("</openbox_pipe_menu>")
    return "\n".join(out) + "\n"


def _ob_item(label: str, command: str) -> str:
    return (
        f'<item label={quoteattr(label.replace("_", "__"))}><action name="Execute">'
        f"<command>{escape(command)}</command></action></item>"
    )


def launch(path: Path) -> subprocess.Popen[bytes]:
    """Start a desktop entry's program, without a shell; in a terminal when it asks for one."""
    values = read_desktop_file(path)
    argv = exec_argv(values.get("Exec", ""))
    if not argv:
        raise ValueError(f"{path} has no Exec line")
    if values.get("Terminal") == "true":
        title = values.get("Name", path.stem)
        argv = [*TERMINAL, "-T", title, "-e", *argv]
    if not shutil.which(argv[0]) and not Path(argv[0]).is_file():
        raise FileNotFoundError(f"{argv[0]} (from {path}) is not installed")
    # A wrapper execs bwrap --die-with-parent: its parent must outlive this launcher, so a
    # small sh waits for the program (xterm does the same for terminal entries).
    keeper = ["sh", "-c", '"$@"; exit $?', "sh"]
    return subprocess.Popen([*keeper, *argv], stdin=subprocess.DEVNULL, start_new_session=True)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "launch":
        try:
            launch(Path(argv[1]))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv and argv[0] in ("jgmenu", "openbox"):
        prefixes = [Path(p) for p in argv[1:]] or [
            Path(p) for p in os.environ.get("NEURODESK_MENU_PREFIXES", "").split(":") if p
        ]
        folders = merged_menu(prefixes)
        render = render_jgmenu if argv[0] == "jgmenu" else render_openbox
        bashrc = os.environ.get(BASHRC_ENV)
        sys.stdout.write(
            render(folders, shlex.join(terminal_argv(Path(bashrc) if bashrc else None)))
        )
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
