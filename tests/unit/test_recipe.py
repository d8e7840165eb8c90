"""Recipe loading, validation errors with key paths, Dockerfile rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurodesk.errors import ValidationError
from neurodesk.recipe import find_recipe, load_recipe
from neurodesk.recipe.render_docker import render_dockerfile

GOOD = """\
name: tool
version: "1.2"
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  add-default-template: false
  directives:
    - install: [curl, "{{ context.name }}-data"]
    - run: ["echo {{ context.version }}", "true"]
    - environment: {TOOL_HOME: /opt/tool}
deploy:
  bins: [tool]
categories: [statistics]
readme: "tool {{ context.version }}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text(text)
    return path


def test_shipped_dcm2niix_recipe_loads_and_renders() -> None:
    recipe = load_recipe(find_recipe("dcm2niix"))
    dockerfile = render_dockerfile(recipe)
    assert dockerfile.splitlines()[1] == "FROM debian:bookworm"
    assert 'ENV DEPLOY_BINS="dcm2niix"' in dockerfile
    assert "COPY build.yaml /build.yaml" in dockerfile


def test_rendering_is_deterministic_and_expands_jinja(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD))
    first, second = render_dockerfile(recipe), render_dockerfile(recipe)
    assert first == second
    assert "curl tool-data" in first
    assert "echo 1.2" in first
    assert 'ENV TOOL_HOME="/opt/tool"' in first


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD.replace("categories: [statistics]", "categories: [astrology]"), "categories"),
        (GOOD.replace("pkg-manager: apt", "pkg-manager: pacman"), "build.pkg-manager"),
        (GOOD.replace('version: "1.2"', "version: 'bad version'"), "version"),
        (GOOD.replace("kind: neurodocker\n", "kind: neurodocker\n  colour: red\n"), "build.colour"),
    ],
)
def test_problems_name_file_and_key_path(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError) as info:
        load_recipe(path)
    assert any(p.startswith(f"{path}: {key}:") for p in info.value.problems), info.value.problems


def test_undefined_jinja_variable_is_an_error_with_its_place(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD.replace('{{ context.version }}"', '{{ nope }}"')))
    with pytest.raises(
        ValidationError, match=r"build.directives\[1\].run\[0\]: 'nope' is undefined"
    ):
        render_dockerfile(recipe)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ValidationError, match=r"build.yaml:2"):
        load_recipe(path)
