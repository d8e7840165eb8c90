"""Today's upstream recipe keys and forms: each accepted and rendered, each with a bad input
that gives one clear line (file: key.path: reason) in our own words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from neurodesk.recipe import load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.recipe.variants import concrete_builds, select
from neurodesk.recipe.wording import closest, did_you_mean
from tests.unit.test_recipe_features import problems, recipe_text, write

PYDANTIC = ("Value error,", "Extra inputs are not permitted", "Input should be", "Field required")


def render(tmp_path: Path, directives: list[Any], fmt: str = "docker", **top: Any) -> str:
    recipe = load_recipe(write(tmp_path, recipe_text(directives, **top)))
    ctx = RenderContext(recipe, arch="x86_64", parallel_jobs=2)
    return (render_dockerfile if fmt == "docker" else render_apptainer)(recipe, ctx)


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({"description": "A tool."}, None),
        ({"icon": "data:image/png;base64,iVBORw0KGgo="}, None),
        ({"auto_update": {"method": "github_release", "repo": "owner/tool"}}, None),
        ({"show_in_menu": False, "show_in_applist": True}, None),
        ({"apptainer_args": ["--nv"]}, None),
        ({"tests": [{"name": "t", "script": "true", "executable": "bash"}]}, None),
        ({"epoch": 3, "draft": True, "readme_url": "https://example.org/r.md"}, None),
        ({"copyright": [{"license": "NOASSERTION"}]}, None),
        ({"copyright": [{"license": "NONE"}]}, None),
        ({"copyright": [{"license": "GPL-2.0-or-later OR MIT"}]}, None),
        ({"copyright": [{"license": "FreeSurfer", "url": "https://x.org"}]}, None),
        ({"categories": ["fetal imaging", "tractography"]}, None),
        ({"version": 2}, None),
    ],
)
def test_top_level_keys_are_accepted(tmp_path: Path, top: dict[str, Any], expected: None) -> None:
    assert "FROM debian:bookworm" in render(tmp_path, [{"run": ["true"]}], **top)


@pytest.mark.parametrize(
    ("top", "key", "reason"),
    [
        ({"instal": "x"}, "instal", "unknown key 'instal'"),
        ({"categories": ["data organization"]}, "categories", "did you mean 'data organisation'"),
        ({"auto_update": {"method": "gitlab", "repo": "a/b"}}, "auto_update.method",
         "unknown value 'gitlab'"),
        ({"auto_update": {"method": "github_release", "repo": "nope"}}, "auto_update.repo",
         "OWNER/REPOSITORY"),
        ({"show_in_menu": "sometimes"}, "show_in_menu", "expected true or false, got a string"),
        ({"readme_url": "ftp://x/README"}, "readme_url", "is not an http(s) URL"),
        ({"copyright": [{"license": "mit"}]}, "copyright[0].license", "did you mean 'MIT'"),
        ({"copyright": [{"license": " "}]}, "copyright[0].license", "empty licence"),
        ({"variants": {"Bad Name": {}}}, "variants", "lowercase letters"),
        ({"variants": {"gpu_arm64": {}}}, "variants", "automatic '_arm64' suffix"),
        ({"variants": {"gpu": {"options": {"cuda": True}}}}, "(top level)",
         "unknown option 'cuda'"),
        ({"variants": {"gpu": {"architecture": "aarch64"}}}, "(top level)",
         "'aarch64' is not in architectures"),
        ({"variants": {"gpu": {"architecture": "x86_64", "architectures": ["x86_64"]}}},
         "variants.gpu", "not both"),
        ({"deploy": {"webapp": {"title": "T", "startup_command": "run", "port": 0}}},
         "deploy.webapp.port", "at least 1"),
        ({"deploy": {"webapp": {"title": "T", "startup_command": "run", "port": 80,
                                "icon": "x.png"}}}, "deploy.webapp.icon", ".svg"),
        ({"tests": [{"name": "t"}]}, "tests[0]", "exactly one of 'script' or 'builtin'"),
        ({"files": [{"name": "a", "contents": "x", "retry": 0}]}, "files[0].retry", "at least 1"),
        ({"files": [{"name": "a", "contents": "x", "refersh": True}]}, "files[0].refersh",
         "did you mean 'refresh'"),
    ],
)  # fmt: skip
def test_top_level_bad_inputs(tmp_path: Path, top: dict[str, Any], key: str, reason: str) -> None:
    found = problems(tmp_path, recipe_text([], **top))
    assert any(p.startswith(f"{key}: ") and reason in p for p in found), found
    assert not any(w in p for p in found for w in PYDANTIC), found


def test_unknown_directive_suggests_the_closest(tmp_path: Path) -> None:
    found = problems(tmp_path, recipe_text([{"instal": "curl"}]))
    assert found == ["build.directives[0].instal: unknown directive 'instal'; did you mean"
                     " 'install'?"]  # fmt: skip
    found = problems(tmp_path, recipe_text([{"run": ["x"], "conditon": "true"}]))
    assert found == ["build.directives[0].conditon: unknown key 'conditon' beside 'run';"
                     " did you mean 'condition'?"]  # fmt: skip


def test_wording_helpers() -> None:
    assert closest("data organization", ["data organisation", "body"]) == ["data organisation"]
    assert did_you_mean("zzzz", ["install"]) == ""


def test_default_template_and_tzdata_as_upstream(tmp_path: Path) -> None:
    data = recipe_text([{"run": ["true"]}])
    del data["build"]["add-default-template"]  # upstream's default: on
    recipe = load_recipe(write(tmp_path, data))
    text = render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))
    assert 'ENV LANG="en_US.UTF-8"' in text and "locales" in text and "tzdata" in text
    assert text.count('ENTRYPOINT ["/neurodocker/startup.sh"]') == 1
    data["build"]["add-tzdata"] = False
    data["build"]["directives"] = [{"entrypoint": "/bin/tool"}]
    recipe = load_recipe(write(tmp_path, data))
    text = render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))
    assert "tzdata" not in text and 'startup.sh"]' not in text  # the recipe's entrypoint wins
    data["build"]["pkg-manager"] = "yum"
    data["build"]["fix-locale-def"] = True
    recipe = load_recipe(write(tmp_path, data))
    assert "localedef" not in render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))


def test_templated_base_image_and_context_names(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        [{"variables": {"greeting": "hi"}},
         {"run": ["echo {{ greeting }} {{ local.greeting }} {{ context.greeting }}",
                  "echo {{ context.arch }} {{ context.original_version }} [{{ context.variant }}]",
                  "echo {{ top }} {{ context.top }}"]}],
        variables={"top": "T", "base": "bookworm"},
    )  # fmt: skip
    assert "echo hi hi hi" in text and "echo x86_64 1.0 []" in text and "echo T T" in text
    data = recipe_text([], variables={"base": "bookworm"})
    data["build"]["base-image"] = "debian:{{ base }}"
    recipe = load_recipe(write(tmp_path, data))
    assert "FROM debian:bookworm" in render_dockerfile(recipe, RenderContext(recipe))


def test_raise_in_a_recipe_is_one_line(tmp_path: Path) -> None:
    data = recipe_text(
        [{"run": ["{{ raise('arm is not supported') }}"], "condition": "arch == 'aarch64'"}],
        architectures=["x86_64", "aarch64"],
    )
    recipe = load_recipe(write(tmp_path, data))
    render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))
    with pytest.raises(Exception) as info:
        render_dockerfile(recipe, RenderContext(recipe, arch="aarch64"))
    assert str(info.value).endswith(
        "build.directives[0].run[0]: the recipe says: arm is not supported"
    )


def test_has_local_and_get_local(tmp_path: Path) -> None:
    directives = [
        {"run": ["cp -r {{ get_local('src') }} /opt/src"], "condition": "context.has_local('src')"},
        {"run": ["echo no local"], "condition": "not has_local('src')"},
    ]
    recipe = load_recipe(write(tmp_path, recipe_text(directives)))
    without = render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))
    assert "echo no local" in without and "--mount" not in without
    ctx = RenderContext(recipe, arch="x86_64", locals_={"src": str(tmp_path)})
    text = render_dockerfile(recipe, ctx)
    assert (
        "RUN --mount=type=bind,source=local/src,target=/.neurodesk/local/src,readonly "
        "cp -r /.neurodesk/local/src /opt/src"
    ) in text
    definition = render_apptainer(recipe, RenderContext(recipe, locals_={"src": str(tmp_path)}))
    assert "local/src /.neurodesk/local/src" in definition
    bad = load_recipe(write(tmp_path, recipe_text([{"run": ["{{ get_local('nope') }}"]}])))
    with pytest.raises(Exception, match=r"get_local\('nope'\): no such local directory"):
        render_dockerfile(bad, RenderContext(bad))


def test_try_values_and_file_conditions(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        [{"run": ["echo {{ context.pick }}"]}],
        variables={"pick": {"try": [{"condition": "arch == 'aarch64'", "value": "arm"},
                                    {"condition": "True", "value": "intel"}]}},
        files=[{"name": "only-arm.txt", "contents": "a", "condition": "arch == 'aarch64'"},
               {"name": "all.txt", "contents": "b", "executable": True, "insecure": None,
                "retry": None, "refresh": True}],
    )  # fmt: skip
    assert "echo intel" in text and "all.txt" in text and "only-arm.txt" not in text


def test_shell_variable_users_and_group_extras(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        [{"group": [{"user": "${NB_UID}"}, {"run": ["id"]}], "custom": "macro",
          "customParams": {"a": 1}}],
    )  # fmt: skip
    assert "USER ${NB_UID}" in text
    found = problems(tmp_path, recipe_text([{"user": "a b"}]), render=True)
    assert any("not a user name, uid or ${VARIABLE}" in p for p in found), found


def test_deploy_directives_win_and_colon_entries_split(tmp_path: Path) -> None:
    text = render(tmp_path, [{"deploy": {"bins": ["a:b"], "path": ["/opt/x/bin"]}}])
    assert 'ENV DEPLOY_BINS="a:b"' in text and 'DEPLOY_PATH="/opt/x/bin"' in text
    text = render(tmp_path, [{"deploy": {"webapp": {"title": "T", "startup_command": "s",
                                                    "port": 8080}}}])  # fmt: skip
    assert 'ENV DEPLOY_BINS="tool"' in text  # no bins in the directive: the top level's apply


def test_copy_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "a.conf").write_text("x")
    text = render(tmp_path, [{"copy": "config /etc/tool"}])
    assert 'COPY ["recipe/config", "/etc/tool"]' in text


def test_variants_render_with_their_names_and_options(tmp_path: Path) -> None:
    data = recipe_text(
        [{"run": ["echo {{ context.name }} {{ context.options.gpu }}"]}],
        architectures=["x86_64", "aarch64"],
        options={"gpu": {"default": False, "version_suffix": "-gpu"}},
        variants={"gpu": {"options": {"gpu": True}, "architectures": ["x86_64", "aarch64"]}},
    )
    recipe = load_recipe(write(tmp_path, data))
    builds = concrete_builds(recipe)
    assert [b.selector for b in builds] == ["", "arm64", "gpu", "gpu_arm64"]
    chosen = select(recipe, "gpu", "aarch64")
    on = recipe.with_options(dict(chosen.options))
    text = render_dockerfile(on, RenderContext(on, arch="aarch64", variant=chosen.selector))
    assert "echo tool_gpu_arm64 True" in text
    with pytest.raises(ValueError, match="it has: default, arm64, gpu, gpu_arm64"):
        select(recipe, "cuda", None)


def test_upstream_template_arguments(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        [{"template": {"name": "mrtrix3", "version": "3.0.4", "libtiff_package": "libtiff5"}}],
    )
    assert "libtiff5" in text and "libtiff6" not in text
    text = render(tmp_path, [{"template": {"name": "fsl", "version": "6.0.7.4",
                                           "fslpython_accept_tos": "true"}}])  # fmt: skip
    assert "CONDA_PLUGINS_AUTO_ACCEPT_TOS=yes" in text
    found = problems(
        tmp_path, recipe_text([{"template": {"name": "mrtrix3", "version": "3.0.4",
                                             "libtiff_pkg": "x"}}]),
    )  # fmt: skip
    assert any("takes no 'libtiff_pkg'" in p for p in found), found


def test_a_variant_build_is_named_after_its_variant(tmp_path: Path) -> None:
    from neurodesk.build.build import build_recipe, prepare_context
    from neurodesk.errors import NotFoundError
    from neurodesk.paths import Paths

    data = recipe_text(
        [{"run": ["echo {{ context.name }} {{ context.variant }} {{ context.options.gpu }}"]}],
        options={"gpu": {"default": False, "version_suffix": "-cuda"}},
        variants={"gpu": {"options": {"gpu": True}}},
    )
    path = write(tmp_path, data)
    recipe = load_recipe(path)
    chosen = select(recipe, "gpu", "x86_64")
    gpu = recipe.with_variant(chosen.variant, dict(chosen.options))
    assert (gpu.image_name, gpu.tag_name) == ("tool_gpu", "tool_gpu_1.0-cuda")
    prepare_context(gpu, path, tmp_path / "ctx")
    assert "echo tool_gpu gpu True" in (tmp_path / "ctx" / "Dockerfile").read_text()
    with pytest.raises(NotFoundError, match="no build 'cuda'"):
        build_recipe(path, Paths(tmp_path / "home"), variant="cuda")


def test_epoch_rebuilds_every_step_and_steps_stay_named(tmp_path: Path) -> None:
    from neurodesk.build.steps import directive_of_steps, instructions

    data = recipe_text([{"install": "jq"}, {"run": ["true"]}], epoch=3)
    del data["build"]["add-default-template"]  # on: a prologue and an entrypoint around them
    recipe = load_recipe(write(tmp_path, data))
    text = render_dockerfile(recipe, RenderContext(recipe, arch="x86_64"))
    assert text.splitlines()[1:3] == ["FROM debian:bookworm", 'LABEL org.neurodesk.epoch="3"']
    assert "org.neurodesk.epoch 3" in render_apptainer(recipe, RenderContext(recipe))
    labels = directive_of_steps(recipe)
    steps = instructions(text)
    assert len(labels) == len(steps)
    named = dict(zip(steps, labels, strict=True))
    assert named[next(s for s in steps if "install -y -q --no-install-recommends jq" in s)] == (
        "build.directives[0].install"
    )
    assert named[next(s for s in steps if s.startswith("RUN true"))] == "build.directives[1].run"
    assert named['ENTRYPOINT ["/neurodocker/startup.sh"]'] == "epilogue"


def test_a_missing_filename_is_a_warning_for_check_and_an_error_for_the_build(
    tmp_path: Path,
) -> None:
    """As upstream's builder: the recipe compiles; only building it needs the file."""
    from neurodesk.errors import ValidationError
    from neurodesk.recipe.context_dir import write_build_context
    from tests.conftest import run_cli

    data = recipe_text([{"copy": "helper.py /opt/helper.py"}])
    data["files"] = [{"name": "helper.py", "filename": "helper.py"}]
    path = write(tmp_path, data)
    proc = run_cli(["recipe", "check", str(path)], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "files[0].filename: helper.py not found" in proc.stderr
    recipe = load_recipe(path)
    context = tmp_path / "context"
    context.mkdir()
    with pytest.raises(ValidationError) as info:
        write_build_context(recipe, path, context)
    assert "files[0].filename: helper.py not found" in info.value.message
    # a path out of the recipe directory is still refused at once
    data["files"] = [{"name": "helper.py", "filename": "../helper.py"}]
    proc = run_cli(["recipe", "check", str(write(tmp_path, data))], tmp_path / "home")
    assert proc.returncode != 0 and "relative path inside it" in proc.stderr
