"""The desktop session inside the VNC display: Openbox, a tint2 panel, the tools menu, xterm.

A light session researchers recognise: a panel at the bottom with "Applications" (the XDG menu
that ``neurodesk install`` writes, by category, shown by jgmenu), "Terminal" and the open
windows; a right click on the desktop shows the same menu (an Openbox pipe menu). Everything is
configured from files written here, under the VNC directory; nothing in the user's own
``~/.config`` is read or changed. Without these programs the display still works (GUI apps
still draw on it), only bare: :func:`missing` says what to install.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from neurodesk.desktop.xmenu import BASHRC_ENV, terminal_argv
from neurodesk.store.atomic import write_text

PROGRAMS = ("openbox", "tint2", "jgmenu", "xterm")
BACKGROUND = "#36506b"
DEBIAN_RC = Path("/etc/xdg/openbox/rc.xml")


def missing() -> list[str]:
    return [p for p in PROGRAMS if not shutil.which(p)]


def _menu_command(kind: str) -> str:
    return shlex.join([sys.executable, "-m", "neurodesk.desktop.xmenu", kind])


def _tint2rc(menu: str, terminal: str) -> str:
    return f"""# written by neurodesk: the desktop's panel
rounded = 0
border_width = 0
background_color = #20262e 100
border_color = #000000 0

rounded = 3
border_width = 0
background_color = #1f5f8b 100
border_color = #000000 0
background_color_hover = #2a77ad 100
border_color_hover = #000000 0
background_color_pressed = #174a6c 100
border_color_pressed = #000000 0

rounded = 3
border_width = 0
background_color = #3c424b 100
border_color = #000000 0
background_color_hover = #4a515c 100
border_color_hover = #000000 0

panel_items = PPTC
panel_size = 100% 34
panel_margin = 0 0
panel_padding = 4 3 6
panel_background_id = 1
panel_position = bottom center horizontal
panel_layer = top
panel_monitor = all
wm_menu = 1
strut_policy = follow_size
disable_transparency = 1
font_shadow = 0
mouse_effects = 1

button = new
button_text = Applications
button_tooltip = The installed tools, by category
button_font = DejaVu Sans Bold 10
button_font_color = #ffffff 100
button_padding = 10 4
button_background_id = 2
button_lclick_command = {menu}

button = new
button_text = Terminal
button_tooltip = A shell with the installed tools and their modules
button_font = DejaVu Sans 10
button_font_color = #ffffff 100
button_padding = 10 4
button_background_id = 3
button_lclick_command = {terminal}

taskbar_mode = single_desktop
taskbar_padding = 4 0 4
taskbar_background_id = 0
taskbar_name = 0
task_text = 1
task_icon = 0
task_centered = 0
task_maximum_size = 220 28
task_padding = 8 2 4
task_font = DejaVu Sans 9
task_font_color = #dddddd 100
task_active_font_color = #ffffff 100
task_background_id = 3
task_active_background_id = 2

time1_format = %H:%M
time1_font = DejaVu Sans 10
clock_font_color = #ffffff 100
clock_padding = 8 0
"""


JGMENURC = """# written by neurodesk: the Applications menu
position_mode = pointer
menu_width = 240
item_height = 26
font = DejaVu Sans 10
icon_size = 0
color_menu_bg = #20262e 100
color_norm_fg = #eeeeee 100
color_sel_bg = #1f5f8b 100
color_sel_fg = #ffffff 100
color_sep_fg = #666666 100
sub_hover_action = 1
"""


def _openbox_rc(menu_xml: Path) -> str:
    """Debian's Openbox configuration, with our menu file instead of Debian's menus."""
    try:
        rc = DEBIAN_RC.read_text(encoding="utf-8")
    except OSError:
        rc = '<openbox_config xmlns="http://openbox.org/3.4/rc"><menu></menu></openbox_config>'
    ours = f"<file>{escape(str(menu_xml))}</file>"
    rc = re.sub(r"<file>[^<]*</file>\s*", "", rc)
    return rc.replace("<menu>", "<menu>\n  " + ours, 1)


def write_session_files(directory: Path, bashrc: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    menu = f"jgmenu --simple --at-pointer --config-file={shlex.quote(str(directory / 'jgmenurc'))}"
    menu += f" --csv-cmd={shlex.quote(_menu_command('jgmenu'))}"
    terminal = shlex.join(terminal_argv(bashrc))
    root_menu = quoteattr(_menu_command("openbox"))
    files = {
        "tint2rc": _tint2rc(menu, terminal),
        "jgmenurc": JGMENURC,
        "menu.xml": (
            '<openbox_menu xmlns="http://openbox.org/3.4/menu">\n'
            f'<menu id="root-menu" label="Neurodesk" execute={root_menu}/>\n'
            "</openbox_menu>\n"
        ),
    }
    paths = {name: directory / name for name in files}
    for name, text in files.items():
        write_text(paths[name], text)
    paths["rc.xml"] = directory / "rc.xml"
    write_text(paths["rc.xml"], _openbox_rc(paths["menu.xml"]))
    return paths


def session_env(
    environ: Mapping[str, str],
    display: str,
    xauthority: Path,
    prefixes: list[Path],
    vnc_dir: Path,
    bashrc: Path,
) -> dict[str, str]:
    """What programs on the desktop see: the server's environment, the display, our menus.

    The VNC directory (the X cookie) is bound into containers, so GUI apps started from the
    menu through their wrappers can open windows.
    """
    env = dict(environ, DISPLAY=display, XAUTHORITY=str(xauthority))
    env["NEURODESK_MENU_PREFIXES"] = ":".join(str(p) for p in prefixes)
    env[BASHRC_ENV] = str(bashrc)
    data = [str(p / "share") for p in prefixes]
    config = [str(p / "etc" / "xdg") for p in prefixes]
    env["XDG_DATA_DIRS"] = ":".join(
        [*data, environ.get("XDG_DATA_DIRS", "/usr/local/share:/usr/share")]
    )
    env["XDG_CONFIG_DIRS"] = ":".join([*config, environ.get("XDG_CONFIG_DIRS", "/etc/xdg")])
    binds = [b for b in environ.get("NEURODESK_BINDPATH", "").split(",") if b]
    env["NEURODESK_BINDPATH"] = ",".join([*binds, str(vnc_dir)])
    return env


def start(
    directory: Path, env: Mapping[str, str], bashrc: Path, log: Path
) -> list[subprocess.Popen[bytes]]:
    """Start the window manager and the panel on ``env['DISPLAY']``; returns their processes."""
    if missing():
        return []
    files = write_session_files(directory, bashrc)
    out = log.open("ab")
    try:
        commands = [
            ["xsetroot", "-solid", BACKGROUND] if shutil.which("xsetroot") else None,
            ["openbox", "--config-file", str(files["rc.xml"])],
            ["tint2", "-c", str(files["tint2rc"])],
        ]
        started = []
        for argv in commands:
            if argv is None:
                continue
            process = subprocess.Popen(
                argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
            if argv[0] == "xsetroot":
                process.wait(10)
            else:
                started.append(process)
        return started
    finally:
        out.close()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
