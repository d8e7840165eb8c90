"""Property test: random and mutated recipes never produce anything but a ValidationError.

Thousands of recipes go through load + validate + render (Dockerfile and Apptainer): the
shipped recipes with keys dropped, types swapped, bad Jinja injected, bad templates and
random directives added; and documents that are random from the start. Every failure must be
a :class:`ValidationError` (or :class:`NotFoundError`) whose lines name the file and a key path.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.directives import KINDS
from neurodesk.recipe.fulltest import TEST_KEYS, TOP_KEYS, VALIDATORS, parse_fulltest
from neurodesk.recipe.load import shipped_recipes, validate_data
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.recipe.tests import parse_tests
from neurodesk.recipe.variants import concrete_builds

EXAMPLES = int(os.environ.get("NEURODESK_FUZZ_EXAMPLES", "1500"))
SHIPPED = [(p, yaml.safe_load(p.read_text())) for p in shipped_recipes()]

BAD_JINJA = [
    "{{",
    "}}",
    "{{ nope }}",
    "{{ 1 / 0 }}",
    "{% for x in %}",
    "{% if %}{% endif %}",
    "{# never closed",
    "{{ get_file('missing.txt') }}",
    "{{ get_file(3) }}",
    "{{ context.options.nothing }}",
    "{{ local.nothing.deeper }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ context.name + 1 }}",
    "{{ range(10 ** 9) | list }}",
    "{{ context | tojson }}",
    "{{ arch }}",
    "{{ parallel_jobs * 'x' }}",
    "{{ context.version }}",
    "{{ raise('no') }}",
    "{{ get_local('src') }}",
    "{{ has_local(1) }}",
    "{{ context.variant ~ context.original_version }}",
    "{{ nope_variable }}",
]
BAD_TEMPLATES: list[Any] = [
    {"name": "fsl", "version": "9.9"},
    {"name": "nosuch"},
    {"name": "ants"},
    {"name": "jq", "version": "1.6", "method": "magic"},
    {"name": "jq", "version": "1.6", "colour": [1]},
    {"name": "jq", "version": "1.6", "urls": "x"},
    {"name": 3},
    {"name": "{{ nope }}", "version": "1"},
    {"name": "{{ 'jq' }}", "version": "{{ '9' }}"},
    {"name": "miniconda", "version": "latest", "conda_install": "{{ 1/0 }}"},
    {"name": "vnc"},
    {"name": "ndfreeze", "date": None},
    {"version": "1.6"},
    "fsl",
    None,
]
KEYS = [
    "name", "version", "build", "directives", "deploy", "bins", "path", "files", "contents",
    "url", "filename", "options", "default", "version_suffix", "variables", "try", "condition",
    "value", "with", "copyright", "license", "categories", "gui_apps", "exec", "readme",
    "base-image", "pkg-manager", "kind", *KINDS,
    # keys of today's upstream format
    "variants", "architecture", "architectures", "auto_update", "method", "repo", "webapp",
    "title", "port", "startup_command", "additional_proxies", "tests", "icon", "description",
    "show_in_menu", "show_in_applist", "add-default-template", "add-tzdata", "fix-locale-def",
    "refresh", "insecure", "retry", "executable", "epoch", "custom", "customParams",
]  # fmt: skip
FULLTEST_KEYS = [
    *TOP_KEYS, *TEST_KEYS, *VALIDATORS, "script", "host_script", "dataset", "files", "tst",
]  # fmt: skip
PYDANTIC_WORDING = ("Value error,", "Extra inputs are not permitted", "Input should be")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(BAD_JINJA),
    st.sampled_from(KEYS),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
directives = st.one_of(
    st.builds(lambda kind, body: {kind: body}, st.sampled_from(KINDS), values),
    st.builds(
        lambda kind, body, cond: {kind: body, "condition": cond},
        st.sampled_from(KINDS),
        values,
        st.sampled_from(BAD_JINJA) | st.just("arch == 'x86_64'") | values,
    ),
    st.builds(lambda t: {"template": t}, st.sampled_from(BAD_TEMPLATES)),
    st.builds(
        lambda body, w: {"group": body, "with": w},
        st.lists(st.builds(lambda k, v: {k: v}, st.sampled_from(KINDS), values), max_size=3),
        values,
    ),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a YAML document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _exercise(data: Any, path: Path) -> None:
    """Load, validate and render in both formats; only our two error types may escape."""
    try:
        recipe = validate_data(data, path)
        for arch in ("x86_64", "aarch64"):
            render_dockerfile(recipe, RenderContext(recipe, arch=arch, parallel_jobs=2))
            render_apptainer(recipe, RenderContext(recipe, arch=arch, parallel_jobs=2))
        if recipe.options:
            on = recipe.with_options({k: True for k in recipe.options})
            render_dockerfile(on, RenderContext(on, arch="x86_64", parallel_jobs=2))
        for build in concrete_builds(recipe)[2:]:  # the variants
            chosen = recipe.with_options(dict(build.options))
            ctx = RenderContext(chosen, arch=build.arch, variant=build.selector, parallel_jobs=2)
            render_dockerfile(chosen, ctx)
    except ValidationError as exc:
        assert exc.problems, "a ValidationError must list its problems"
        for line in exc.problems:
            assert "\n" not in line.strip(), line
            assert line.startswith(str(path)), line
            assert not any(words in line for words in PYDANTIC_WORDING), line
    except NotFoundError:
        pass


fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@fuzz_settings
@given(st.data())
def test_mutated_shipped_recipes_fail_cleanly(data: st.DataObject) -> None:
    path, original = data.draw(st.sampled_from(SHIPPED))
    doc = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths or not isinstance(doc, dict):
            break
        where = data.draw(st.sampled_from(paths))
        parent, key = _parent(doc, where), where[-1]
        action = data.draw(
            st.sampled_from(["drop", "swap", "jinja", "directive", "template", "option"])
        )
        if action == "drop":
            del parent[key]
        elif action == "swap":
            parent[key] = copy.deepcopy(data.draw(values))
        elif action == "jinja":
            parent[key] = data.draw(st.sampled_from(BAD_JINJA))
        elif action == "option":
            doc["options"] = copy.deepcopy(
                data.draw(
                    st.dictionaries(st.sampled_from(["gpu", "x", "1bad"]), values, max_size=2)
                )
            )
        else:
            build = doc.get("build")
            if isinstance(build, dict) and isinstance(build.get("directives"), list):
                items = build["directives"]
                new = (
                    data.draw(directives)
                    if action == "directive"
                    else {"template": data.draw(st.sampled_from(BAD_TEMPLATES))}
                )
                # drawn objects may be shared (sampled_from): later mutations must not touch them
                items.insert(data.draw(st.integers(0, len(items))), copy.deepcopy(new))
    _exercise(doc, path)


@fuzz_settings
@given(values, st.lists(directives, max_size=4))
def test_random_documents_fail_cleanly(doc: Any, extra: list[Any]) -> None:
    path, base = SHIPPED[0]
    _exercise(doc, path)
    mixed = copy.deepcopy(base)
    mixed["build"]["directives"] = copy.deepcopy(extra)
    _exercise(mixed, path)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values)
def test_random_test_files_fail_cleanly(doc: Any) -> None:
    source = Path("recipes/x/test.yaml")
    try:
        parse_tests({"tests": doc} if isinstance(doc, list) else doc, source)
    except ValidationError as exc:
        assert all(line.startswith(str(source)) for line in exc.problems)


fulltest_values = st.recursive(
    scalars | st.sampled_from(FULLTEST_KEYS),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FULLTEST_KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(fulltest_values, st.lists(fulltest_values, max_size=3))
def test_random_fulltest_files_fail_cleanly(doc: Any, tests: list[Any]) -> None:
    source = Path("recipes/x/fulltest.yaml")
    for candidate in (doc, {"name": "x", "version": "1", "tests": tests}):
        try:
            parse_fulltest(candidate, source)
        except ValidationError as exc:
            assert exc.problems
            assert all(line.startswith(str(source)) for line in exc.problems)
            assert all("\n" not in line for line in exc.problems)
