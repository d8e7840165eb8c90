"""``neurodesk recipe new NAME``: a recipe and its tests that pass ``recipe check`` as written."""

from __future__ import annotations

import re
from pathlib import Path

from neurodesk.errors import NeurodeskError, ValidationError
from neurodesk.recipe.model import NAME_PATTERN, VERSION_PATTERN

BUILD_YAML = """\
# Recipe for {name}: docs/recipe-format.md describes every key and directive.
name: {name}
version: "{version}"
architectures:
  - x86_64
copyright:
  - license: {license}
    url: https://spdx.org/licenses/{license}.html
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  add-default-template: false
  directives:
    # Debian packages (check names with `apt-cache policy NAME`).
    - install: {package}
    - environment:
        LANG: C.UTF-8
deploy:
  # Every executable directly inside these directories becomes a command ...
  path: []
  # ... and so does each of these.
  bins:
    - {command}
categories:
  - {category}
readme: |-
  ## {name}/{{{{ context.version }}}}

  TODO: one paragraph saying what {name} does.

  Example:
  ```
  {command} --help
  ```
"""

TEST_YAML = """\
# Tests run inside the built image (`neurodesk test {name}`), besides the builtin check that
# every deployed command resolves. Make data, run the tool on it, check the result: a test
# that only runs --help proves little. The format: docs/recipe-format.md (fulltest.yaml).
name: {name}
version: "{version}"
test_data:
  output_dir: test_output
tests:
  - name: {command} is on the PATH
    command: command -v {command}
    expected_exit_code: 0
"""


def scaffold(
    directory: Path,
    name: str,
    version: str = "1.0.0",
    package: str | None = None,
    command: str | None = None,
    category: str = "programming",
    license_id: str = "MIT",
) -> list[Path]:
    """Write ``build.yaml`` and ``fulltest.yaml`` into ``directory`` (which must not exist)."""
    problems = []
    if not re.match(NAME_PATTERN, name):
        problems.append(f"{name}: name: use lowercase letters, digits, '.', '+', '-'")
    if not re.match(VERSION_PATTERN, version):
        problems.append(f"{name}: version: '{version}' has characters a tag cannot have")
    if problems:
        raise ValidationError(problems[0], problems)
    if directory.exists():
        raise NeurodeskError(f"{directory} already exists", hint="choose another name or --dir")
    values = {
        "name": name,
        "version": version,
        "package": package or name,
        "command": command or name,
        "category": category,
        "license": license_id,
    }
    directory.mkdir(parents=True)
    written = []
    for filename, text in (("build.yaml", BUILD_YAML), ("fulltest.yaml", TEST_YAML)):
        path = directory / filename
        path.write_text(text.format(**values), encoding="utf-8")
        written.append(path)
    return written
