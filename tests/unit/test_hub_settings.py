"""neurodesk-hub.yaml: what an organiser may write, and the one-line errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurodesk.errors import ValidationError
from neurodesk.hub.deploy import init_deployment, render_settings
from neurodesk.hub.settings import load_settings, parse_duration, parse_settings, parse_size
from tests.conftest import assert_one_line_error, run_cli

BASE = {"authenticator": "firstuse", "users": ["alice", "bob"]}


def problems(data: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_settings(data, "hub.yaml")
    return info.value.problems


def test_defaults_are_a_workshop_on_this_machine() -> None:
    settings = parse_settings(BASE)
    assert settings.spawner.kind == "local"
    assert settings.idle_seconds == 3600
    assert settings.limits.memory_bytes == 4 * 1024**3
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * 1024**2), ("4G", 4 * 1024**3), ("1.5G", int(1.5 * 1024**3)), (2048, 2048)],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("90", 90), (600, 600), ("30m", 1800), ("2h", 7200)]
)
def test_durations(text: str | int, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({**BASE, "autenticator": "pam"}, "hub.yaml: autenticator: unknown setting"),
        ({**BASE, "authenticator": "none"}, "authenticator: must be 'firstuse', 'native'"),
        ({**BASE, "users": ["Alice Smith"]}, "users: 'Alice Smith' is not a valid user name"),
        ({**BASE, "users": ["bob", "bob"]}, "a user is listed twice"),
        ({**BASE, "limits": {"memory": "lots"}}, "limits.memory: 'lots' is not a size"),
        ({**BASE, "limits": {"memory": "1M"}}, "too small"),
        ({**BASE, "idle_timeout": "5"}, "idle_timeout: must be at least 10 seconds"),
        ({**BASE, "idle_timeout": "soon"}, "is not a duration"),
        ({**BASE, "bind": "8000"}, "bind: '8000' must be ADDRESS:PORT"),
        ({**BASE, "bind": "example.org:80"}, "is not an IP address"),
        ({**BASE, "spawner": {"kind": "slurm"}}, "hub_connect_ip: required for spawner slurm"),
        ({**BASE, "spawner": {"slurm": {"time": "forever"}}}, "spawner.slurm.time"),
        ({**BASE, "spawner": {"slurm": {"extra": ["-p x\n#"]}}}, "one sbatch option"),
        ({**BASE, "authenticator": "oauth"}, "oauth: required when authenticator is oauth"),
        ({**BASE, "admins": ["carol"]}, "admins: 'carol' is not in users"),
        ({**BASE, "tools": ["dcm2niix; rm -rf /"]}, "is not NAME or NAME/VERSION"),
        ({**BASE, "python": "python3"}, "python: 'python3' must be an absolute path"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_each_problem_is_one_line_naming_the_key(data: object, needle: str) -> None:
    found = problems(data)
    assert len(found) == 1, found
    assert found[0].startswith("hub.yaml"), found
    assert needle in found[0], found
    assert "\n" not in found[0]


def test_several_problems_are_listed_one_per_line() -> None:
    found = problems({**BASE, "bind": "x", "limits": {"cpus": 0}})
    assert len(found) == 2 and all(p.startswith("hub.yaml: ") for p in found), found


def test_the_written_template_reads_back_the_same(tmp_path: Path) -> None:
    values = {
        **BASE,
        "title": 'Brain "imaging": day 1',
        "tools": ["dcm2niix", "mrtrix3/3.0.4"],
        "admins": ["alice"],
        "idle_timeout": "30m",
        "spawner": {"kind": "slurm", "slurm": {"partition": "gpu", "time": "02:00:00"}},
        "hub_connect_ip": "10.0.0.5",
    }
    settings = parse_settings(values)
    assert parse_settings(yaml.safe_load(render_settings(settings))) == settings
    hub = init_deployment(tmp_path / "course", values)
    assert load_settings(hub.root) == settings
    text = hub.settings.read_text()
    assert "# Who gets in." in text  # the organiser's file explains itself
    assert "configure(c, Path(__file__).resolve().parent)" in hub.config.read_text()
    compile(hub.config.read_text(), str(hub.config), "exec")
    assert (hub.root / "generated" / "z2jh-values.yaml").is_file()
    assert oct(hub.state.stat().st_mode & 0o777) == "0o700"


def test_init_refuses_to_overwrite_and_writes_nothing_on_bad_input(
    tmp_path: Path, home: Path
) -> None:
    target = tmp_path / "course"
    proc = run_cli(["hub", "init", str(target), "--user", "Bad Name"], home)
    assert_one_line_error(proc, "users: 'Bad Name' is not a valid user name")
    assert not target.exists()
    proc = run_cli(["hub", "init", str(target), "--user", "alice"], home)
    assert proc.returncode == 0, proc.stderr
    before = (target / "neurodesk-hub.yaml").read_text()
    proc = run_cli(["hub", "init", str(target), "--user", "bob"], home)
    assert_one_line_error(proc, "exists already", "--force")
    assert (target / "neurodesk-hub.yaml").read_text() == before


def test_broken_yaml_is_one_line_with_its_line_number(tmp_path: Path, home: Path) -> None:
    init_deployment(tmp_path, BASE)
    (tmp_path / "neurodesk-hub.yaml").write_text("users: [alice\nbind: x\n")
    proc = run_cli(["hub", "status", str(tmp_path)], home)
    assert_one_line_error(proc, "is not valid YAML", "line ")
    (tmp_path / "neurodesk-hub.yaml").write_text("users: [alice]\nlimits: {memory: huge}\n")
    proc = run_cli(["hub", "start", str(tmp_path)], home)
    assert_one_line_error(proc, "limits.memory: 'huge' is not a size")


def test_init_without_users_then_start_says_to_list_them(tmp_path: Path, home: Path) -> None:
    proc = run_cli(["hub", "init", str(tmp_path / "c")], home)
    assert proc.returncode == 0, proc.stderr
    for command in ("start", "prepare"):
        proc = run_cli(["hub", command, str(tmp_path / "c")], home)
        assert_one_line_error(proc, "users: list who may log in (authenticator firstuse")


def test_status_of_a_stopped_hub(tmp_path: Path, home: Path) -> None:
    init_deployment(tmp_path, BASE)
    proc = run_cli(["hub", "status", str(tmp_path), "--json"], home)
    assert proc.returncode == 0, proc.stderr
    assert '"running": false' in proc.stdout


def test_missing_deployment_says_how_to_make_one(tmp_path: Path, home: Path) -> None:
    proc = run_cli(["hub", "status", str(tmp_path / "nowhere")], home)
    assert_one_line_error(proc, "does not exist", "neurodesk hub init")
