"""``fulltest.yaml``: the test suite beside ``build.yaml`` (today's upstream format).

::

    name: dcm2niix                 # the recipe's name and version (checked against build.yaml)
    version: 1.0.20240202
    default_timeout: 120           # seconds per test unless the test says otherwise
    env: {OMP_NUM_THREADS: "1"}    # exported before every test (and setup)
    env_setup: source /opt/x/setup.sh
    test_data:                     # variables ($t1w, ${output_dir}); relative paths are made
      t1w: ds000001/sub-01/anat/sub-01_T1w.nii.gz      # absolute under the suite's directory
      output_dir: test_output
    required_files:                # files of OpenNeuro datasets the tests read
      - dataset: ds000001
        files: [sub-01/anat/sub-01_T1w.nii.gz]
    setup: {script: ..., host_script: ...}     # in the image / on the host, before the tests
    cleanup: {script: ..., host_script: ...}   # on the host after the tests (as upstream)
    tests:
      - name: converts
        command: dcm2niix -o ${output_dir} in/     # or script: (a bash script)
        expected_exit_code: 0                      # or expected_exit_code_not: 0,
        expected_output_contains: ["Convert"]      # or ignore_exit_code: true
        validate:
          - output_exists: ${output_dir}/out.nii
          - same_dimensions: [${t1w}, ${output_dir}/out.nii]
          - is_3d: ${output_dir}/out.nii
        depends_on: [other test]                   # skipped when one of them failed
        timeout: 60
        tags: [quick]

Any other top-level key with a plain value is a variable too (``mitk_path: /opt/MITK``), as
upstream's runner reads it. Problems are ``<file>: <key.path>: <reason>`` lines; a misspelt
known key is refused with the closest names; keys upstream's runner ignores are warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from neurodesk.errors import ValidationError
from neurodesk.recipe.tests import one_line
from neurodesk.recipe.wording import closest, did_you_mean, unknown, yaml_type

if TYPE_CHECKING:
    from neurodesk.recipe.model import Recipe

FILENAME = "fulltest.yaml"
TOP_KEYS = (
    "name",
    "version",
    "tests",
    "setup",
    "cleanup",
    "test_data",
    "required_files",
    "default_timeout",
    "env",
    "env_setup",
    "container",
    "pin_container",
    "script_runner",
    "script_ext",
    "matlab_runtime",
)
TEST_KEYS = (
    "name",
    "description",
    "command",
    "script",
    "expected_output_contains",
    "expected_exit_code",
    "expected_exit_code_not",
    "ignore_exit_code",
    "validate",
    "depends_on",
    "timeout",
    "tags",
    "env_setup",
)
# Checks of a test's outputs, run on the host (nibabel for images); the value is the number of
# paths each takes.
VALIDATORS: dict[str, int] = {
    "output_exists": 1,
    "output_dir_not_empty": 1,
    "same_dimensions": 2,
    "is_3d": 1,
    "is_4d": 1,
}
HOOK_KEYS = ("script", "host_script")
DATASET = re.compile(r"^ds[0-9]{6}$")
DEFAULT_TIMEOUT = 120
# How alike an unknown key must be to a known one to be taken for a typo (refused) rather than
# an extra key upstream's runner ignores (a warning).
TYPO = 0.85


@dataclass(frozen=True)
class Validation:
    kind: str
    paths: tuple[str, ...]


@dataclass
class FullTest:
    name: str
    command: str
    is_script: bool = False
    description: str = ""
    expected_output: tuple[str, ...] = ()
    expected_exit_code: int = 0
    expected_exit_code_not: int | None = None
    ignore_exit_code: bool = False
    validate: tuple[Validation, ...] = ()
    depends_on: tuple[str, ...] = ()
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    env_setup: str | None = None


@dataclass(frozen=True)
class Dataset:
    dataset: str
    files: tuple[str, ...]


@dataclass
class Suite:
    source: Path
    name: str
    version: str
    tests: list[FullTest]
    setup_script: str = ""
    setup_host_script: str = ""
    cleanup_script: str = ""
    cleanup_host_script: str = ""
    test_data: dict[str, str] = field(default_factory=dict)
    required_files: list[Dataset] = field(default_factory=list)
    default_timeout: float = DEFAULT_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)
    env_setup: str = ""
    script_runner: str = ""
    script_ext: str = ".sh"
    variables: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ``${name}`` and ``$name`` by their values (values may refer to others)."""
    names = sorted(variables, key=len, reverse=True)  # $output_dir before $output
    for _ in range(10):
        before = text
        for key in names:
            text = text.replace("${" + key + "}", variables[key])
            value = variables[key].replace("\\", "\\\\")  # a literal replacement for re.sub
            text = re.sub(r"\$" + re.escape(key) + r"(?![A-Za-z0-9_])", value, text)
        if text == before:
            break
    return text


class _Checker:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def bad(self, where: str, reason: str) -> None:
        self.problems.append(one_line(f"{self.source}: {where}: {reason}"))

    def warn(self, where: str, reason: str) -> None:
        self.warnings.append(one_line(f"{self.source}: {where}: {reason}"))

    def unknown_key(self, key: Any, where: str, known: tuple[str, ...], what: str) -> bool:
        """Refuse a key that is nearly a known one (a typo); True when it was refused."""
        near = closest(str(key), known, cutoff=TYPO)
        if near and near[0] != key:
            self.bad(where, f"unknown {what} '{key}'" + did_you_mean(str(key), known))
            return True
        return False

    def text(self, value: Any, where: str, *, allow_number: bool = False) -> str | None:
        if isinstance(value, str):
            return value
        if allow_number and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.bad(where, f"expected a string, got {yaml_type(value)}")
        return None

    def integer(self, value: Any, where: str, *, positive: bool = False) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(where, f"expected a whole number, got {yaml_type(value)}")
            return None
        if positive and value <= 0:
            self.bad(where, f"must be more than 0, not {value}")
            return None
        return value

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.bad(where, f"expected true or false, got {yaml_type(value)}")
            return False
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            self.bad(where, f"expected a string or a list of strings, got {yaml_type(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            text = self.text(item, f"{where}[{i}]", allow_number=True)
            if text is not None:
                out.append(text)
        return tuple(out)

    def hooks(self, value: Any, where: str) -> tuple[str, str]:
        if not isinstance(value, dict):
            self.bad(
                where,
                f"expected a mapping with 'script' and/or 'host_script', got {yaml_type(value)}",
            )
            return "", ""
        for key in value:
            if key not in HOOK_KEYS:
                self.bad(f"{where}.{key}", unknown("key", str(key), HOOK_KEYS))
        script = self.text(value.get("script", ""), f"{where}.script") or ""
        host = self.text(value.get("host_script", ""), f"{where}.host_script") or ""
        return script, host

    def validation(self, value: Any, where: str) -> Validation | None:
        if not isinstance(value, dict) or len(value) != 1:
            self.bad(where, "a check is a mapping with one key, e.g. '- output_exists: PATH'")
            return None
        kind, arg = next(iter(value.items()))
        if kind not in VALIDATORS:
            self.bad(f"{where}.{kind}", unknown("check", str(kind), tuple(VALIDATORS)))
            return None
        count = VALIDATORS[kind]
        if count == 1:
            path = self.text(arg, f"{where}.{kind}")
            return Validation(kind, (path,)) if path else None
        if not isinstance(arg, list) or len(arg) != count:
            self.bad(f"{where}.{kind}", f"expected a list of {count} paths, got {yaml_type(arg)}")
            return None
        paths = [self.text(a, f"{where}.{kind}[{i}]") for i, a in enumerate(arg)]
        if any(p is None for p in paths):
            return None
        return Validation(kind, tuple(p for p in paths if p is not None))

    def test(self, value: Any, where: str) -> FullTest | None:
        if not isinstance(value, dict):
            self.bad(where, f"a test is a mapping, got {yaml_type(value)}")
            return None
        for key in value:
            if key not in TEST_KEYS and not self.unknown_key(
                key, f"{where}.{key}", TEST_KEYS, "key"
            ):
                self.warn(
                    f"{where}.{key}", f"unknown key '{key}' is ignored (as upstream's runner does)"
                )
        name = self.text(value.get("name"), f"{where}.name") if "name" in value else None
        if "name" not in value:
            self.bad(f"{where}.name", "this key is required")
        command = value.get("command")
        script = value.get("script")
        if command is None and script is None:
            self.bad(where, "a test needs 'command' or 'script'")
            return None
        if command is not None and script is not None:
            self.bad(where, "give 'command' or 'script', not both")
            return None
        body = self.text(
            command if command is not None else script,
            f"{where}.{'command' if command is not None else 'script'}",
        )
        if name is None or body is None:
            return None
        test = FullTest(name=name, command=body, is_script=script is not None)
        if "description" in value:
            test.description = self.text(value["description"], f"{where}.description") or ""
        if "expected_output_contains" in value:
            test.expected_output = self.strings(
                value["expected_output_contains"], f"{where}.expected_output_contains"
            )
        if "expected_exit_code" in value:
            test.expected_exit_code = (
                self.integer(value["expected_exit_code"], f"{where}.expected_exit_code") or 0
            )
        if "expected_exit_code_not" in value:
            test.expected_exit_code_not = self.integer(
                value["expected_exit_code_not"], f"{where}.expected_exit_code_not"
            )
        if "ignore_exit_code" in value:
            test.ignore_exit_code = self.flag(
                value["ignore_exit_code"], f"{where}.ignore_exit_code"
            )
        if "validate" in value:
            checks = value["validate"]
            if not isinstance(checks, list):
                self.bad(f"{where}.validate", f"expected a list of checks, got {yaml_type(checks)}")
            else:
                found = [self.validation(c, f"{where}.validate[{i}]") for i, c in enumerate(checks)]
                test.validate = tuple(v for v in found if v is not None)
        if "depends_on" in value:
            test.depends_on = self.strings(value["depends_on"], f"{where}.depends_on")
        if "timeout" in value:
            seconds = self.integer(value["timeout"], f"{where}.timeout", positive=True)
            test.timeout = float(seconds) if seconds else None
        if "tags" in value:
            test.tags = self.strings(value["tags"], f"{where}.tags")
        if "env_setup" in value:
            test.env_setup = self.text(value["env_setup"], f"{where}.env_setup")
        return test

    def suite(self, data: Any) -> Suite | None:
        if not isinstance(data, dict):
            self.bad(
                "(top level)", "a fulltest file is a mapping with 'name', 'version' and 'tests'"
            )
            return None
        variables: dict[str, str] = {}
        for key, value in data.items():
            if key in TOP_KEYS:
                continue
            if self.unknown_key(key, str(key), TOP_KEYS, "key"):
                continue
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                variables[str(key)] = str(value)
            else:
                self.warn(
                    str(key), f"'{key}' is not a known key nor a plain variable; it is ignored"
                )
        for key in ("name", "version", "tests"):
            if key not in data:
                self.bad(key, "this key is required")
        name = self.text(data.get("name", ""), "name") or ""
        version = self.text(data.get("version", ""), "version", allow_number=True) or ""
        raw_tests = data.get("tests", [])
        tests: list[FullTest] = []
        if not isinstance(raw_tests, list):
            self.bad("tests", f"expected a list of tests, got {yaml_type(raw_tests)}")
        else:
            for i, item in enumerate(raw_tests):
                if (test := self.test(item, f"tests[{i}]")) is not None:
                    tests.append(test)
        suite = Suite(self.source, name, version, tests)
        seen: set[str] = set()
        for i, test in enumerate(tests):
            if test.name in seen:
                self.bad(f"tests[{i}].name", f"two tests are named '{test.name}'")
            seen.add(test.name)
        for i, test in enumerate(tests):
            for dep in test.depends_on:
                if dep == test.name:
                    self.bad(f"tests[{i}].depends_on", "a test cannot depend on itself")
                elif dep not in seen:
                    hint = did_you_mean(dep, closest(dep, seen, cutoff=TYPO))
                    if hint:
                        self.bad(f"tests[{i}].depends_on", f"no test named '{dep}'{hint}")
                    else:
                        self.warn(
                            f"tests[{i}].depends_on",
                            f"no test named '{dep}'; the dependency is ignored",
                        )
        if "setup" in data:
            suite.setup_script, suite.setup_host_script = self.hooks(data["setup"], "setup")
        if "cleanup" in data:
            suite.cleanup_script, suite.cleanup_host_script = self.hooks(data["cleanup"], "cleanup")
        if "test_data" in data:
            raw = data["test_data"]
            if not isinstance(raw, dict):
                self.bad("test_data", f"expected a mapping of NAME: path, got {yaml_type(raw)}")
            else:
                for key, value in raw.items():
                    text = self.text(value, f"test_data.{key}", allow_number=True)
                    if text is not None:
                        suite.test_data[str(key)] = text
        if "required_files" in data:
            suite.required_files = self.datasets(data["required_files"])
        if "default_timeout" in data:
            seconds = self.integer(data["default_timeout"], "default_timeout", positive=True)
            suite.default_timeout = float(seconds or DEFAULT_TIMEOUT)
        if "env" in data:
            env = data["env"]
            if not isinstance(env, dict):
                self.bad("env", f"expected a mapping of NAME: value, got {yaml_type(env)}")
            else:
                for key, value in env.items():
                    if not (isinstance(key, str) and key.isidentifier()):
                        self.bad(f"env.{key}", "environment names are letters, digits and '_'")
                    text = self.text(value, f"env.{key}", allow_number=True)
                    if text is not None:
                        suite.env[str(key)] = text
        if "env_setup" in data:
            suite.env_setup = self.text(data["env_setup"], "env_setup") or ""
        if "script_runner" in data:
            suite.script_runner = self.text(data["script_runner"], "script_runner") or ""
        if "script_ext" in data:
            suite.script_ext = self.text(data["script_ext"], "script_ext") or ".sh"
        if (
            "matlab_runtime" in data
            and isinstance(data["matlab_runtime"], dict)
            and not suite.script_runner
        ):
            runtime = data["matlab_runtime"]
            runner = str(runtime.get("runner", ""))
            if runner:
                suite.script_runner = f"{runner} {runtime.get('path', '')}".strip()
                suite.script_ext = ".m"
        # As upstream's runner: the suite's name and version are variables too ($name, ${version}).
        suite.variables = {"name": name, "version": version, **variables}
        return suite

    def datasets(self, value: Any) -> list[Dataset]:
        if not isinstance(value, list):
            self.bad(
                "required_files", f"expected a list of {{dataset, files}}, got {yaml_type(value)}"
            )
            return []
        out = []
        for i, entry in enumerate(value):
            where = f"required_files[{i}]"
            if not isinstance(entry, dict):
                self.bad(
                    where, f"expected a mapping with 'dataset' and 'files', got {yaml_type(entry)}"
                )
                continue
            for key in entry:
                if key not in ("dataset", "files"):
                    self.bad(f"{where}.{key}", unknown("key", str(key), ("dataset", "files")))
            dataset = self.text(entry.get("dataset"), f"{where}.dataset")
            if dataset is not None and not DATASET.match(dataset):
                self.bad(f"{where}.dataset", f"'{dataset}' is not an OpenNeuro id like ds000001")
                dataset = None
            files = self.strings(entry.get("files", []), f"{where}.files")
            for j, name in enumerate(files):
                parts = PurePosixPath(name).parts
                if not name or name.startswith("/") or ".." in parts:
                    self.bad(f"{where}.files[{j}]", f"'{name}' must be a path inside the dataset")
            if dataset is not None:
                out.append(Dataset(dataset, files))
        return out


def parse_fulltest(data: Any, source: Path) -> Suite:
    """Validate a parsed fulltest document; ValidationError lists every problem."""
    checker = _Checker(source)
    suite = checker.suite(data)
    if checker.problems or suite is None:
        raise ValidationError(
            f"{source}: {len(checker.problems)} problem(s): " + "; ".join(checker.problems[:2]),
            checker.problems,
            hint="see docs/recipe-format.md (fulltest.yaml)",
        )
    suite.warnings = checker.warnings
    return suite


def load_fulltest(recipe_dir: Path, recipe: Recipe | None = None) -> Suite | None:
    """The recipe's ``fulltest.yaml`` (None when it has none), checked against the recipe."""
    path = recipe_dir / FILENAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        line = f"{path}{where}: {getattr(exc, 'problem', None) or 'invalid YAML'}"
        raise ValidationError(line, [line], hint="fix the YAML syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        line = f"{path}: cannot read: {exc}"
        raise ValidationError(line, [line]) from None
    suite = parse_fulltest(data, path)
    if recipe is not None:
        problems = []
        if suite.name != recipe.name:
            problems.append(
                f"{path}: name: '{suite.name}' is not the recipe's name '{recipe.name}'"
            )
        version = substitute(suite.version, suite.variables)
        if version != recipe.base_version:
            problems.append(
                f"{path}: version: '{version}' is not the recipe's version '{recipe.base_version}'"
                " (change both together)"
            )
        if problems:
            raise ValidationError(problems[0], problems)
    return suite
