"""config.yaml: the sources list, its validation and its order (issue 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError, ValidationError
from neurodesk.sources.config import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_missing_file_means_no_sources(tmp_path: Path) -> None:
    config = load_config(tmp_path / "config.yaml")
    assert config.sources == [] and config.timeout == 10 and config.retries == 3


def test_sources_are_ordered_by_kind_then_file_order(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
sources:
  - {name: web, kind: http, url: "http://files/"}
  - {name: reg1, kind: registry, mirrors: [a:5000/ns, b:5000/ns], insecure: true}
  - {name: cvmfs, kind: tree, url: /cvmfs/neurodesk.ardc.edu.au}
  - {name: reg2, kind: registry, url: c/ns}
timeout: 2.5
""",
        )
    )
    assert [s.name for s in config.ordered()] == ["cvmfs", "reg1", "reg2", "web"]
    assert config.named("reg1") is not None and config.named("reg1").mirrors == [  # type: ignore[union-attr]
        "a:5000/ns",
        "b:5000/ns",
    ]
    assert config.named("web").mirrors == ["http://files/"]  # type: ignore[union-attr]
    assert config.timeout == 2.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sources:\n  - {name: x, kind: ftp, url: a}\n", "sources[0].kind"),
        ("sources:\n  - {name: x, kind: tree}\n", "give 'mirrors'"),
        ("sources:\n  - {name: x, kind: tree, url: a, colour: red}\n", "sources[0].colour"),
        ("sources:\n  - {name: x, kind: tree, url: a}\n  - {name: x, kind: tree, url: b}\n",
         "unique"),
        ("timeout: -1\n", "timeout"),
        ("retries: 0\n", "retries"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_config(write(tmp_path, text))
    assert needle in str(caught.value) or any(needle in p for p in caught.value.problems)
    assert str(tmp_path / "config.yaml") in caught.value.problems[0]


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(NeurodeskError, match="not valid YAML"):
        load_config(write(tmp_path, "sources: [\n"))
    with pytest.raises(NeurodeskError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
