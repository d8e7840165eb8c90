"""Recipe features built for real with buildah: files (contents, url), copy, group/with,
conditions, options, boutique, user, entrypoint; and a shipped test.yaml run in its image."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neurodesk.build.build import build_recipe
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

RECIPE = """\
name: featuretest
version: "1.0"
copyright:
  - license: MIT
options:
  extra: {default: true, description: adds a marker, version_suffix: "-x"}
files:
  - name: greeting.txt
    contents: "hello from {{ context.name }} {{ context.version }}"
  - name: served.bin
    url: URL
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  add-default-template: false
  directives:
    - workdir: /opt/feature
    - copy: tool.sh /opt/feature/bin/tool
    - run:
        - chmod +x /opt/feature/bin/tool
        - cp {{ get_file('greeting.txt') }} {{ get_file('served.bin') }} /opt/feature/
    - file: {name: late.sh, contents: "#!/bin/sh\\necho late\\n", executable: true}
    - group:
        - run: ["echo {{ local.msg }} > msg.txt"]
      with: {msg: "grouped-{{ arch }}"}
    - run: ["touch /opt/feature/extra"]
      condition: context.options.extra
    - run: ["touch /opt/feature/never"]
      condition: not context.options.extra
    - boutique: {name: feature, command-line: "tool [X]", inputs: []}
    - run: ["mkdir -m 777 /opt/shared"]
    - user: neuro
    - run: ["whoami > /opt/shared/user.txt"]
    - entrypoint: /opt/feature/bin/tool
deploy:
  path: [/opt/feature/bin]
categories: [programming]
readme: feature {{ context.version }}
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, bytes]]:
    payload = bytes(range(256)) * 4

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/served.bin", payload
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def feature_image(
    nd_home: Path, tmp_path_factory: pytest.TempPathFactory, served: tuple[str, bytes]
) -> ImageRecord:
    recipe_dir = tmp_path_factory.mktemp("featuretest")
    (recipe_dir / "build.yaml").write_text(RECIPE.replace("URL", served[0]))
    (recipe_dir / "tool.sh").write_text('#!/bin/sh\necho "tool says $*"\n')
    return build_recipe(recipe_dir / "build.yaml", Paths(nd_home)).record


def sh(home: Path, script: str) -> str:
    proc = run_cli(["exec", "featuretest", "--", "sh", "-c", script], home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_feature_recipe_builds_and_every_directive_took_effect(
    nd_home: Path, feature_image: ImageRecord, served: tuple[str, bytes]
) -> None:
    assert feature_image.version == "1.0-x"  # the option is on by default: suffix in the tag
    assert sh(nd_home, "cat /opt/feature/greeting.txt") == "hello from featuretest 1.0-x"
    assert sh(nd_home, "od -An -tx1 /opt/feature/served.bin | tr -d ' \\n' | head -c 8") == (
        "00010203"
    )
    assert sh(nd_home, "cat /opt/feature/msg.txt").strip() == "grouped-x86_64"
    assert sh(nd_home, "ls /opt/feature").split() == [
        "bin", "extra", "greeting.txt", "msg.txt", "served.bin"
    ]  # fmt: skip
    assert sh(nd_home, "/opt/feature/bin/tool hi").strip() == "tool says hi"
    assert sh(nd_home, "/.neurodesk/files/late.sh").strip() == "late"
    assert sh(nd_home, "cat /opt/shared/user.txt").strip() == "neuro"
    assert '"command-line": "tool [X]"' in sh(nd_home, "cat /boutique/feature.json")
    assert sh(nd_home, "echo $DEPLOY_PATH").strip() == "/opt/feature/bin"
    assert sh(nd_home, "cat /README.md").strip() == "feature 1.0-x"
    assert "name: featuretest" in sh(nd_home, "cat /build.yaml")
    assert sh(nd_home, "ls -d /cvmfs /data /scratch /neurodesktop-storage").split() == [
        "/cvmfs", "/data", "/neurodesktop-storage", "/scratch"
    ]  # fmt: skip


def test_shipped_dcm2niix_tests_pass_in_its_image(
    nd_home: Path, dcm2niix_image: ImageRecord
) -> None:
    proc = run_cli(["test", "dcm2niix", "--json"], nd_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "converts a generated DICOM series" in proc.stdout


UPSTREAM_FEATURES = """\
name: upfeat
version: "2.0"
copyright:
  - license: NOASSERTION
categories: [fetal imaging]
description: today's upstream keys, built for real
apptainer_args: [--cleanenv]
options:
  gpu: {default: false, version_suffix: "-gpu"}
variants:
  gpu: {options: {gpu: true}}
variables:
  who: "{{ context.name }}"
files:
  - name: never.txt
    contents: never
    condition: arch == 'sparc'
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  add-default-template: false
  directives:
    - run:
        - mkdir -p /opt/up
        - cp {{ get_local("src") }}/data.txt /opt/up/from-local.txt
        - echo "{{ who }} {{ context.variant }} {{ context.original_version }}" > /opt/up/who.txt
      condition: has_local("src")
deploy:
  bins: [cat]
readme: upfeat {{ context.version }}
"""


def test_variant_build_with_a_local_directory(nd_home: Path, tmp_path: Path) -> None:
    recipe_dir = tmp_path / "upfeat"
    recipe_dir.mkdir()
    (recipe_dir / "build.yaml").write_text(UPSTREAM_FEATURES)
    local = tmp_path / "src"
    local.mkdir()
    (local / "data.txt").write_text("from the host\n")
    result = build_recipe(
        recipe_dir / "build.yaml", Paths(nd_home), locals_={"src": str(local)}, variant="gpu"
    )
    assert (result.record.name, result.record.version) == ("upfeat_gpu", "2.0-gpu")
    proc = run_cli(["exec", "upfeat_gpu", "--", "cat", "/opt/up/from-local.txt", "/opt/up/who.txt"],
                   nd_home)  # fmt: skip
    assert proc.stdout == "from the host\nupfeat_gpu gpu 2.0\n", proc.stderr
    # Bound for that step only: its files never land in the image (buildah may leave the
    # empty mount point behind).
    check = 'test -z "$(ls -A /.neurodesk/local/src 2>/dev/null)" && echo absent'
    proc = run_cli(["exec", "upfeat_gpu", "--", "sh", "-c", check], nd_home)
    assert proc.stdout == "absent\n", proc.stderr
    release = result.release.read_text() if result.release else ""
    assert '"variant": "gpu"' in release and '"apptainer_args": [\n' in release
