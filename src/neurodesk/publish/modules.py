"""Lmod module files for a published tree: ``neurodesk-modules/<category>/<name>/<version>.lua``.

The module finds the tree from its own location (``myFileName()``), so a tree stays usable
when mounted or copied elsewhere, and puts the container's wrapper directory on PATH.
"""

from __future__ import annotations

from neurodesk.catalog.imageinfo import ImageInfo
from neurodesk.install.templating import lua_long_string as _lua_string
from neurodesk.runtime.spec import DEPLOY_ENV_PREFIX
from neurodesk.store import ImageRecord


def render_lua(record: ImageRecord, info: ImageInfo, commands: list[str]) -> str:
    lines = [
        f"-- {record.name}/{record.version} from container {record.id}; written by neurodesk",
        f"help({_lua_string(info.readme or record.id)})",
        f"whatis({_lua_string('Name: ' + record.name)})",
        f"whatis({_lua_string('Version: ' + record.version)})",
        f"whatis({_lua_string('Description: ' + info.description)})",
        f"whatis({_lua_string('Categories: ' + ', '.join(info.categories))})",
        f"whatis({_lua_string('Commands: ' + ' '.join(commands))})",
        'local tree = myFileName():match("^(.*)/neurodesk%-modules/")',
        f'prepend_path("PATH", pathJoin(tree, "containers", {_lua_string(record.id)}))',
    ]
    for key, value in sorted(record.env.items()):
        if key.startswith(DEPLOY_ENV_PREFIX) and len(key) > len(DEPLOY_ENV_PREFIX):
            name = key[len(DEPLOY_ENV_PREFIX) :]
            lines.append(f"setenv({_lua_string(name)}, {_lua_string(value)})")
    return "\n".join(lines) + "\n"
