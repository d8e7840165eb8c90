"""Every build.yaml key and directive: what it renders to in both formats, and its errors."""

from __future__ import annotations

import hashlib
import http.server
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.recipe import load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.context_dir import render_readme, write_build_context
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile


def recipe_text(directives: list[Any], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tool",
        "version": "1.0",
        "copyright": [{"license": "MIT", "url": "https://example.org"}],
        "build": {
            "kind": "neurodocker",
            "base-image": "debian:bookworm",
            "pkg-manager": "apt",
            "add-default-template": False,
            "directives": directives,
        },
        "deploy": {"bins": ["tool"]},
        "categories": ["programming"],
        "readme": "tool {{ context.version }}",
    }
    data.update(top)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def docker(tmp_path: Path, directives: list[Any], **top: Any) -> str:
    recipe = load_recipe(write(tmp_path, recipe_text(directives, **top)))
    return render_dockerfile(recipe, RenderContext(recipe, arch="x86_64", parallel_jobs=3))


def apptainer(tmp_path: Path, directives: list[Any], **top: Any) -> str:
    recipe = load_recipe(write(tmp_path, recipe_text(directives, **top)))
    return render_apptainer(recipe, RenderContext(recipe, arch="x86_64", parallel_jobs=3))


def problems(tmp_path: Path, data: dict[str, Any], render: bool = False) -> list[str]:
    path = write(tmp_path, data)
    with pytest.raises(ValidationError) as info:
        recipe = load_recipe(path)
        if render:
            render_dockerfile(recipe)
    return [p.removeprefix(f"{path}: ") for p in info.value.problems]


def test_basic_directives_in_order(tmp_path: Path) -> None:
    text = docker(
        tmp_path,
        [
            {"install": "curl jq"},
            {"run": ["echo {{ arch }} {{ parallel_jobs }}", "true"]},
            {"workdir": "/opt"},
            {"environment": {"A": "1", "B": 'say "hi" $PATH'}},
            {"user": "neuro"},
            {"entrypoint": "/bin/bash -l"},
        ],
    )
    lines = text.splitlines()
    assert lines[1] == "FROM debian:bookworm"
    assert "apt-get install -y -q --no-install-recommends curl jq" in lines[2]
    assert lines[3:5] == ["RUN echo x86_64 3 \\", "     && true"]
    assert lines[5] == "WORKDIR /opt"
    assert lines[6:8] == ['ENV A="1" \\', '    B="say \\"hi\\" $PATH"']
    assert "useradd" in lines[8] and lines[9] == "USER neuro"
    assert lines[10] == 'ENTRYPOINT ["/bin/bash", "-l"]'
    assert 'ENV DEPLOY_BINS="tool"' in lines
    assert "COPY build.yaml /build.yaml" in lines
    # mount points need root, the recipe's user stays in effect afterwards
    assert lines[-3:-1] == ["USER root", lines[-2]] and lines[-1] == "USER neuro"
    assert "/neurodesktop-storage" in lines[-2] and "/cvmfs" in lines[-2]


def test_apptainer_translation(tmp_path: Path) -> None:
    (tmp_path / "config.txt").write_text("x=1\n")
    text = apptainer(
        tmp_path,
        [
            {"workdir": "/opt/tool"},
            {"run": ["mkdir -p etc"]},
            {"copy": "config.txt /opt/tool/etc/config.txt"},
            {"environment": {"TOOL_HOME": "/opt/tool"}},
            {"user": "neuro"},
            {"run": ["echo 'it''s me'"]},
            {"entrypoint": "tool --serve"},
        ],
    )
    assert "Bootstrap: docker\nFrom: debian:bookworm\n" in text
    assert "    recipe/config.txt /.neurodesk/stage/2/config.txt" in text
    post = text.split("%post\n")[1].split("\n%environment")[0]
    assert "mkdir -p /opt/tool\ncd /opt/tool\nmkdir -p etc\n" in post
    assert "cp -a /.neurodesk/stage/2/config.txt /opt/tool/etc/config.txt" in post
    assert 'export TOOL_HOME="/opt/tool"' in post
    script = shlex.quote("cd /opt/tool && echo 'it''s me'")
    assert f"su -s /bin/sh neuro -c {script}" in post
    assert post.rstrip().endswith("rm -rf /.neurodesk/stage")
    assert '    export TOOL_HOME="/opt/tool"\n    export DEPLOY_PATH=""' in text
    assert '%runscript\n    exec tool --serve "$@"' in text


def test_conditions_groups_variables_and_with(tmp_path: Path) -> None:
    text = docker(
        tmp_path,
        [
            {"variables": {"pkg": "curl"}},
            {"install": "{{ local.pkg }}", "condition": 'arch == "x86_64"'},
            {"install": "never", "condition": 'arch == "aarch64"'},
            {
                "group": [
                    {"variables": {"inner": "yes"}},
                    {"run": ["echo {{ local.greeting }} {{ local.inner }} {{ local.pkg }}"]},
                ],
                "with": {"greeting": "hello-{{ context.name }}"},
            },
            {"run": ["echo {{ local.inner | default('scoped') }}"]},
        ],
    )
    assert "--no-install-recommends curl &&" in text
    assert "never" not in text
    assert "RUN echo hello-tool yes curl" in text
    assert "RUN echo scoped" in text  # variables set inside a group stay inside it


def test_top_level_variables_with_try(tmp_path: Path) -> None:
    variables = {
        "tool_pkg": {
            "try": [
                {"condition": 'arch == "aarch64"', "value": "arm-pkg"},
                {"condition": 'arch == "x86_64"', "value": "x86-pkg"},
            ]
        }
    }
    text = docker(tmp_path, [{"install": "{{ context.tool_pkg }}"}], variables=variables)
    assert "--no-install-recommends x86-pkg &&" in text


def test_options_change_version_tag_and_context(tmp_path: Path) -> None:
    data = recipe_text(
        [{"install": "cuda-tools", "condition": "context.options.gpu"}],
        options={"gpu": {"default": False, "description": "GPU", "version_suffix": "-gpu"}},
    )
    recipe = load_recipe(write(tmp_path, data))
    assert (recipe.version, recipe.tag_name) == ("1.0", "tool_1.0")
    assert "cuda-tools" not in render_dockerfile(recipe)
    on = recipe.with_options({"gpu": True})
    assert (on.version, on.tag_name) == ("1.0-gpu", "tool_1.0-gpu")
    assert "cuda-tools" in render_dockerfile(on)
    assert render_readme(on) == "tool 1.0-gpu\n"
    with pytest.raises(ValidationError, match="unknown option 'gpus'; did you mean 'gpu'"):
        recipe.with_options({"gpus": True})


def test_include_with_variables(tmp_path: Path) -> None:
    (tmp_path / "macros").mkdir()
    (tmp_path / "macros" / "common.yaml").write_text(
        yaml.safe_dump(
            {"builder": "neurodocker", "directives": [{"run": ["echo {{ local.who }}"]}]}
        )
    )
    text = docker(tmp_path, [{"include": "macros/common.yaml", "with": {"who": "included"}}])
    assert "RUN echo included" in text


def test_files_contents_filename_and_get_file(tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho hi\n")
    files = [
        {"name": "hello.txt", "contents": "hello {{ context.name }}"},
        {"name": "script.sh", "filename": "script.sh", "executable": True},
    ]
    directives = [
        {"file": {"name": "late.txt", "contents": "late"}},
        {"run": ["cat {{ get_file('hello.txt') }} {{ get_file('late.txt') }}"]},
    ]
    data = recipe_text(directives, files=files)
    path = write(tmp_path, data)
    recipe = load_recipe(path)
    text = render_dockerfile(recipe)
    assert 'COPY ["files/hello.txt", "/.neurodesk/files/hello.txt"]' in text
    assert "RUN cat /.neurodesk/files/hello.txt /.neurodesk/files/late.txt" in text
    context = tmp_path / "ctx"
    context.mkdir()
    write_build_context(recipe, path, context)
    assert (context / "files" / "hello.txt").read_text() == "hello tool"
    assert (context / "files" / "script.sh").stat().st_mode & 0o111
    assert (context / "files" / "late.txt").read_text() == "late"
    assert (context / "README.md").read_text() == "tool 1.0\n"
    assert (context / "Singularity").read_text().startswith("# Generated by neurodesk")


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, hits
    finally:
        server.shutdown()
        server.server_close()


def test_url_files_are_downloaded_once_and_verified(
    tmp_path: Path, http_root: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root, hits = http_root
    payload = b"\x00binary tool\xff" * 100
    (root / "tool.bin").write_bytes(payload)
    monkeypatch.setenv("NEURODESK_HOME", str(tmp_path / "home"))
    files = [
        {
            "name": "tool.bin",
            "url": f"{base}/tool.bin",
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    ]
    path = write(tmp_path, recipe_text([{"run": ["ls {{ get_file('tool.bin') }}"]}], files=files))
    recipe = load_recipe(path)
    for attempt in range(2):
        context = tmp_path / f"ctx{attempt}"
        context.mkdir()
        write_build_context(recipe, path, context)
        assert (context / "files" / "tool.bin").read_bytes() == payload
    assert hits == ["/tool.bin"], "the second build must use the cache"
    cached = list((tmp_path / "home" / "cache" / "files").iterdir())
    assert len(cached) == 1
    files[0]["refresh"] = True  # upstream's refresh: download again although cached
    refreshed = load_recipe(write(tmp_path, recipe_text([], files=files)))
    write_build_context(refreshed, path, tmp_path / "ctx-refresh")
    assert hits == ["/tool.bin", "/tool.bin"]
    files[0].pop("refresh")

    files[0]["sha256"] = "0" * 64  # a wrong checksum is an error, and nothing is cached
    files[0]["url"] = f"{base}/tool.bin?v=2"
    recipe = load_recipe(write(tmp_path, recipe_text([], files=files)))
    with pytest.raises(NotFoundError, match="SHA-256 mismatch"):
        write_build_context(recipe, path, tmp_path / "ctx2")
    files[0]["url"] = f"{base}/missing.bin"
    files[0].pop("sha256")
    recipe = load_recipe(write(tmp_path, recipe_text([], files=files)))
    with pytest.raises(NotFoundError, match="cannot download"):
        write_build_context(recipe, path, tmp_path / "ctx3")
    assert len(list((tmp_path / "home" / "cache" / "files").iterdir())) == 1


def test_boutique_and_test_directives(tmp_path: Path) -> None:
    descriptor = {
        "name": "tool",
        "command-line": "tool [IN]",
        "inputs": [],
        "schema-version": "0.5",
    }
    path = write(
        tmp_path,
        recipe_text(
            [{"boutique": descriptor}, {"test": {"name": "t", "script": "tool --version"}}]
        ),
    )
    recipe = load_recipe(path)
    assert 'COPY ["boutique/tool.json", "/boutique/tool.json"]' in render_dockerfile(recipe)
    context = tmp_path / "ctx"
    context.mkdir()
    write_build_context(recipe, path, context)
    assert '"command-line": "tool [IN]"' in (context / "boutique" / "tool.json").read_text()


def test_structured_readme(tmp_path: Path) -> None:
    data = recipe_text([], readme="", structured_readme={
        "description": "Does {{ context.name }} things.",
        "example": "tool in out",
        "documentation": "https://example.org/docs",
        "citation": "Someone (2024).",
    })  # fmt: skip
    text = render_readme(load_recipe(write(tmp_path, data)))
    assert text.startswith("## tool/1.0\n\nDoes tool things.\n\nExample:\n```\ntool in out\n```")
    assert "Citation: Someone (2024)." in text


def test_template_directive_renders_in_both_formats(tmp_path: Path) -> None:
    directives = [{"template": {"name": "ants", "version": "2.4.3", "method": "binaries"}}]
    text = docker(tmp_path, directives)
    assert 'ENV ANTSPATH="/opt/ants-2.4.3/"' in text or "ANTSPATH" in text
    assert "curl" in text and "/opt/ants-2.4.3" in text
    app = apptainer(tmp_path, directives)
    assert "export ANTSPATH=" in app and "/opt/ants-2.4.3" in app


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("afni", "latest"),
        ("ants", "2.4.3"),
        ("bids_validator", "1.14.0"),
        ("cat12", "r1933_R2017b"),
        ("convert3d", "1.0.0"),
        ("dcm2niix", "v1.0.20220720"),
        ("freesurfer", "7.4.1"),
        ("fsl", "6.0.5.1"),
        ("jq", "1.6"),
        ("matlabmcr", "2019b"),
        ("minc", "1.9.15"),
        ("miniconda", "latest"),
        ("mricron", "1.0.20190902"),
        ("mrtrix3", "3.0.2"),
        ("ndfreeze", None),
        ("neurodebian", None),
        ("niftyreg", "1.4.0"),
        ("petpvc", "1.2.2"),
        ("spm12", "r7771"),
        ("vnc", None),
    ],
)
def test_all_twenty_templates_render(tmp_path: Path, name: str, version: str | None) -> None:
    from neurodesk.recipe.templates import load_template, methods_of, versions_of

    body: dict[str, Any] = {"name": name}
    method = methods_of(name)[0]
    required = (load_template(name)[method].get("arguments") or {}).get("required") or []
    known = versions_of(name, method)
    for arg in required:
        body[arg] = "x"
    if "version" in required:
        body["version"] = version if known is None or version in known else known[-1]
    extra = {
        "ndfreeze": {"date": "20240101"},
        "neurodebian": {"os_codename": "bookworm"},
        "vnc": {"passwd": "secret"},
    }
    body.update(extra.get(name, {}))
    text = docker(tmp_path, [{"template": body}])
    assert text.count("RUN ") >= 1
    assert text == docker(tmp_path, [{"template": body}])


@pytest.mark.parametrize(
    ("directive", "key", "reason"),
    [
        ({"template": {"name": "fsl", "version": "9.9"}}, "template.version", "not a known fsl"),
        ({"template": {"name": "nosuch"}}, "template.name", "unknown template"),
        (
            {"template": {"name": "jq", "version": "1.6", "colour": 1}},
            "template.colour",
            "takes no",
        ),
        ({"template": {"name": "jq", "method": "magic"}}, "template.method", "has no method"),
        ({"template": {"name": "ants"}}, "template.version", "needs 'version'"),
        ({"install": 3}, "install", "expected a list of strings"),
        ({"run": "echo {{ unclosed"}, "run", "Jinja syntax error"),
        ({"environment": {"A": [1]}}, "environment.A", "strings or numbers"),
        ({"copy": "only-one"}, "copy", "sources and a destination"),
        ({"file": {"name": "a"}}, "file", "exactly one of"),
        ({"group": [{"nonsense": 1}]}, "group[0].nonsense", "unknown directive 'nonsense'"),
        ({"install": "x", "condition": "a ==="}, "condition", "Jinja syntax error"),
        ({"install": "x", "with": {"a": 1}}, "with", "only goes with"),
        ({"include": "missing.yaml"}, "include", "not found"),
        ({"test": {"name": "t"}}, "test", "exactly one of"),
        ({"deploy": {"bins": "x"}}, "deploy.bins", "expected a list, got a string"),
        ({"boutique": {"name": "x"}}, "boutique.command-line", "needs this string"),
        ({"install": "x", "run": ["y"]}, "", "exactly one kind"),
    ],
)
def test_directive_problems_name_their_key_path(
    tmp_path: Path, directive: dict[str, Any], key: str, reason: str
) -> None:
    found = problems(tmp_path, recipe_text([{"install": "ok"}, directive]))
    where = f"build.directives[1].{key}" if key else "build.directives[1]"
    assert any(p.startswith(f"{where}: ") and reason in p for p in found), found


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"copyright": [{"license": "GPL-4.0"}]}, "copyright[0].license", "did you mean 'GPL-3.0'"),
        ({"copyright": [{"license": "mit"}]}, "copyright[0].license", "did you mean 'MIT'"),
        ({"copyright": [{"url": "x"}]}, "copyright[0]", "give 'license'"),
        ({"categories": ["astrology"]}, "categories", "unknown category 'astrology'"),
        ({"gui_apps": [{"name": "x"}]}, "gui_apps[0].exec", "this key is required"),
        (
            {"options": {"gpu": {"version_suffix": "/bad"}}},
            "options.gpu.version_suffix",
            "use letters, digits",
        ),
        ({"files": [{"name": "a", "contents": "x", "url": "y"}]}, "files[0]", "exactly one"),
        ({"readme": "{% if %}"}, "readme", "Jinja syntax error"),
        (
            {"architectures": ["sparc"]},
            "architectures[0]",
            "unknown value 'sparc'; valid: x86_64, aarch64",
        ),
        ({"version": "1_0"}, "version", "'_' separates name and version"),
    ],
)
def test_top_level_problems(tmp_path: Path, change: dict[str, Any], key: str, reason: str) -> None:
    found = problems(tmp_path, recipe_text([], **change))
    assert any(p.startswith(f"{key}: ") and reason in p for p in found), found


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    data = recipe_text(
        [{"install": 3}, {"template": {"name": "fsl", "version": "0"}}], categories=["x"]
    )
    found = problems(tmp_path, data)
    assert len(found) == 3, found


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ nope }}", "'nope' is undefined"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ get_file('x') }}", "get_file('x'): no such file"),
        ("{{ context.options.gpu }}", "has no attribute 'gpu'"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ],
)
def test_render_errors_are_one_line_with_key_path(tmp_path: Path, text: str, reason: str) -> None:
    found = problems(tmp_path, recipe_text([{"run": ["ok", text]}]), render=True)
    assert len(found) == 1 and found[0].startswith("build.directives[0].run[1]: ")
    assert reason in found[0], found


def test_spdx_expressions() -> None:
    from neurodesk.recipe.spdx import check_license_expression

    for good in ["MIT", "GPL-2.0+", "(MIT OR Apache-2.0) AND BSD-3-Clause", "LicenseRef-FSL",
                 "GPL-2.0-only WITH Classpath-exception-2.0"]:  # fmt: skip
        check_license_expression(good)
    for bad in ["", "MIT AND", "(MIT", "MIT WITH Nope", "Nope-1.0", "MIT OR OR GPL-2.0"]:
        with pytest.raises(ValueError):
            check_license_expression(bad)
