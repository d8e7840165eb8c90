"""Builder backends: command lines, selection, base-image names, step attribution."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from neurodesk.build import select
from neurodesk.build.base import (
    BaseImageError,
    Distro,
    debootstrap_argv,
    ensure_base,
    mirror_reachable,
    parse_base,
)
from neurodesk.build.build import StepTracker, image_labels, prepare_context, with_base
from neurodesk.build.buildah import BuildahBuilder, qualify
from neurodesk.build.docker import DockerBuilder
from neurodesk.build.podman import PodmanBuilder
from neurodesk.build.steps import directive_of_steps, instructions
from neurodesk.errors import ExternalCommandError, MissingToolError, NotFoundError
from neurodesk.paths import Paths
from neurodesk.recipe import Recipe
from tests.conftest import assert_one_line_error, run_cli

LABELS = {"org.neurodesk.builddate": "20240101", "a.b": "c d"}


def fake_program(bindir: Path, name: str, script: str = "exit 0") -> Path:
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fakebin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only stand-ins, so backends can be constructed without the real tools."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


def recipe(directives: list[dict[str, object]], base: str = "debian:bookworm") -> Recipe:
    return Recipe.model_validate(
        {
            "name": "tool",
            "version": "1.0",
            "build": {
                "kind": "neurodocker",
                "base-image": base,
                "pkg-manager": "apt",
                "add-default-template": False,
                "directives": directives,
            },
            "deploy": {"bins": ["tool"]},
        }
    )


def test_buildah_command_line(fakebin: Path, tmp_path: Path) -> None:
    exe = fake_program(fakebin, "buildah")
    builder = BuildahBuilder(Paths(tmp_path / "home"))
    argv = builder.build_argv(tmp_path / "ctx", "localhost/tool_1.0:20240101", LABELS)
    assert argv[:7] == [
        str(exe),
        "--root",
        str(tmp_path / "home/buildah/storage"),
        "--runroot",
        str(tmp_path / "home/buildah/run"),
        "--storage-driver",
        "overlay",
    ]
    rest = argv[7:]
    assert rest[:6] == ["bud", "--isolation", "chroot", "--pull=false", "--layers", "--force-rm"]
    # Labels sorted, so the same recipe gives the same LABEL steps (and cache hits).
    assert rest[6:10] == ["--label", "a.b=c d", "--label", "org.neurodesk.builddate=20240101"]
    assert rest[10:] == [
        "-t",
        "localhost/tool_1.0:20240101",
        "-f",
        str(tmp_path / "ctx/Dockerfile"),
        str(tmp_path / "ctx"),
    ]


def test_podman_command_line(fakebin: Path, tmp_path: Path) -> None:
    fake_program(fakebin, "podman")
    runc = fake_program(fakebin, "runc")
    builder = PodmanBuilder(Paths(tmp_path / "home"))
    argv = builder.build_argv(tmp_path / "ctx", "localhost/t:1", LABELS)
    # The same containers-storage as buildah: bases and cached layers are shared.
    assert argv[1:3] == ["--root", str(tmp_path / "home/buildah/storage")]
    assert argv[7:9] == ["--runtime", str(runc)]  # crun fails on this kernel; runc works
    assert argv[9:15] == [
        "build",
        "--isolation",
        "chroot",
        "--pull=never",
        "--layers",
        "--force-rm",
    ]
    assert argv[-5:] == [
        "-t",
        "localhost/t:1",
        "-f",
        str(tmp_path / "ctx/Dockerfile"),
        str(tmp_path / "ctx"),
    ]


def test_docker_command_lines(fakebin: Path, tmp_path: Path) -> None:
    exe = fake_program(fakebin, "docker")
    builder = DockerBuilder(Paths(tmp_path / "home"))
    argv = builder.build_argv(tmp_path / "ctx", "localhost/t:1", LABELS)
    assert argv == [
        str(exe), "build", "--progress=plain", "--label", "a.b=c d",
        "--label", "org.neurodesk.builddate=20240101", "-t", "localhost/t:1",
        "-f", str(tmp_path / "ctx/Dockerfile"), str(tmp_path / "ctx"),
    ]  # fmt: skip
    # Without skopeo the image leaves through 'docker save'; with it, the daemon transport.
    assert builder.export_argv("t:1", tmp_path / "out")[:2] == [str(exe), "save"]
    skopeo = fake_program(fakebin, "skopeo")
    assert builder.export_argv("t:1", tmp_path / "out") == [
        str(skopeo), "copy", "--quiet", "docker-daemon:t:1", f"oci:{tmp_path / 'out'}",
    ]  # fmt: skip


def test_buildkit_step_lines_are_parsed(fakebin: Path, tmp_path: Path) -> None:
    fake_program(fakebin, "docker")
    seen: list[tuple[int, int, str]] = []
    builder = DockerBuilder(Paths(tmp_path))
    tracker = StepTracker(builder, [], lambda n, t, text: seen.append((n, t, text)))
    for line in ("#5 [2/4] RUN apt-get update", "#6 [stage-1 3/4] COPY a b", "#7 DONE 0.1s"):
        tracker(line)
    assert seen == [(2, 4, "RUN apt-get update"), (3, 4, "COPY a b")]


def test_docker_is_chosen_only_when_its_engine_answers(fakebin: Path, tmp_path: Path) -> None:
    # The docker CLI without a daemon (as on this machine) fails 'docker version'.
    fake_program(fakebin, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    assert not DockerBuilder.available()
    with pytest.raises(MissingToolError, match="'buildah' is not installed"):
        select.choose_builder(Paths(tmp_path))
    with pytest.raises(MissingToolError, match="builder 'docker' is not usable here"):
        select.choose_builder(Paths(tmp_path), "docker")
    fake_program(fakebin, "docker", 'echo "27.1.0"')
    assert DockerBuilder.available()
    assert select.choose_builder(Paths(tmp_path)).name == "docker"
    assert DockerBuilder(Paths(tmp_path)).version() == "27.1.0"
    fake_program(fakebin, "podman")
    assert select.choose_builder(Paths(tmp_path)).name == "podman"  # preferred over docker
    fake_program(fakebin, "buildah")
    assert select.choose_builder(Paths(tmp_path)).name == "buildah"
    with pytest.raises(NotFoundError, match="no builder named 'kaniko'"):
        select.choose_builder(Paths(tmp_path), "kaniko")


def test_qualify_short_names() -> None:
    assert qualify("debian:bookworm") == "docker.io/library/debian:bookworm"
    assert qualify("neurodesk/base:1") == "docker.io/neurodesk/base:1"
    assert qualify("localhost/tool_1.0:20240101") == "localhost/tool_1.0:20240101"
    assert qualify("ghcr.io/x/y:1") == "ghcr.io/x/y:1"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("debian:bookworm", Distro("debian", "bookworm")),
        ("debian:12-slim", Distro("debian", "bookworm")),
        ("docker.io/library/debian:11", Distro("debian", "bullseye")),
        ("ubuntu:22.04", Distro("ubuntu", "jammy")),
        ("ubuntu:noble", Distro("ubuntu", "noble")),
        ("ubuntu:18.04", None),
        ("centos:7", None),
        ("neurodesk/base:1", None),
    ],
)
def test_parse_base(ref: str, expected: Distro | None) -> None:
    assert parse_base(ref) == expected


def test_debootstrap_command_line(fakebin: Path, tmp_path: Path) -> None:
    exe = fake_program(fakebin, "debootstrap")
    argv = debootstrap_argv(
        Distro("debian", "bookworm"), tmp_path / "t", "http://m/debian", tmp_path
    )
    assert argv == [
        str(exe), "--variant=minbase", f"--cache-dir={tmp_path}", "bookworm",
        str(tmp_path / "t"), "http://m/debian",
    ]  # fmt: skip


class NoBaseBuilder(BuildahBuilder):
    """A builder that has no images and cannot pull: what an offline machine looks like."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def has_image(self, ref: str) -> bool:
        return False

    def pull(self, ref: str, log: Path) -> bool:
        return False


def test_ubuntu_without_mirror_offers_base_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURODESK_UBUNTU_MIRROR", "http://127.0.0.1:9/ubuntu")  # nothing listens
    assert not mirror_reachable("http://127.0.0.1:9/ubuntu", "jammy", timeout=2)
    paths = Paths(tmp_path)
    with pytest.raises(BaseImageError) as caught:
        ensure_base(NoBaseBuilder(paths), "ubuntu:22.04", paths, tmp_path / "log", print)
    text = str(caught.value)
    assert "no Ubuntu mirror is reachable" in text and "--base-override debian:bookworm" in text
    assert "\n" not in text
    with pytest.raises(BaseImageError, match="cannot be pulled"):
        ensure_base(NoBaseBuilder(paths), "centos:7", paths, tmp_path / "log", print)


def test_mirror_reachable_reads_file_mirrors(tmp_path: Path) -> None:
    release = tmp_path / "dists" / "jammy" / "Release"
    release.parent.mkdir(parents=True)
    release.write_text("Origin: Ubuntu\n")
    assert mirror_reachable(f"file://{tmp_path}", "jammy")
    assert not mirror_reachable(f"file://{tmp_path}", "noble")


def test_steps_map_to_directives() -> None:
    r = recipe(
        [
            {"install": "dcm2niix"},
            {"environment": {"A": "1", "B": "2"}},
            {"run": ["echo a", "echo b"]},
        ]
    )
    from neurodesk.recipe.render_docker import render_dockerfile

    labels = directive_of_steps(r)
    assert len(labels) == len(instructions(render_dockerfile(r)))
    assert labels[0] == "base-image"
    assert labels[1] == "build.directives[0].install"
    assert labels.count("build.directives[1].environment") >= 1
    assert labels[-1] == "epilogue"
    assert "build.directives[2].run" in labels


def test_instructions_join_continuations() -> None:
    text = "# c\nFROM x\nRUN a \\\n && b\n\nENV A=1\n"
    assert instructions(text) == ["FROM x", "RUN a   && b", "ENV A=1"]


def test_failed_step_names_directive_and_command(fakebin: Path, tmp_path: Path) -> None:
    fake_program(fakebin, "buildah")
    builder = BuildahBuilder(Paths(tmp_path))
    tracker = StepTracker(builder, ["base-image", "build.directives[0].run"], None)
    tracker("STEP 1/3: FROM debian:bookworm")
    tracker("STEP 2/3: RUN echo a      && exit 3")
    error = tracker.failure(ExternalCommandError("x failed", ["l1", "l2"]), tmp_path / "b.log")
    assert str(error).startswith(
        "build failed at step 2/3 (build.directives[0].run): RUN echo a && exit 3"
    )
    assert error.log_tail == ["l1", "l2"] and str(tmp_path / "b.log") in str(error)
    tracker("STEP 3/3: LABEL a=b")
    assert tracker.directive(3) == "labels"


def test_context_is_byte_stable_and_dateless(tmp_path: Path) -> None:
    source = tmp_path / "build.yaml"
    source.write_text("name: tool\n")
    r = recipe([{"install": "dcm2niix"}])
    ctx = tmp_path / "ctx"
    digest = prepare_context(r, source, ctx)
    stamps = {p.name: p.stat().st_mtime_ns for p in ctx.iterdir()}
    (ctx / "stale.txt").write_text("left from an older recipe")
    assert prepare_context(r, source, ctx) == digest
    assert {p.name: p.stat().st_mtime_ns for p in ctx.iterdir()} == stamps  # untouched
    text = "".join(p.read_text() for p in ctx.iterdir())
    assert not re.search(r"20\d\d-?\d\d-?\d\d", text)  # no dates that would break the cache


def test_labels_and_base_override(fakebin: Path, tmp_path: Path) -> None:
    fake_program(fakebin, "buildah", 'echo "buildah version 1.28.2 (image-spec 1.1.0)"')
    builder = BuildahBuilder(Paths(tmp_path))
    r = with_base(recipe([], base="ubuntu:22.04"), "debian:bookworm")
    assert r.build.base_image == "debian:bookworm"
    labels = image_labels(r, "20240101", "sha256:abc", builder, r.build.base_image)
    assert labels["org.opencontainers.image.title"] == "tool"
    assert labels["org.opencontainers.image.version"] == "1.0"
    assert labels["org.opencontainers.image.created"] == "20240101"
    assert labels["org.neurodesk.recipe.digest"] == "sha256:abc"
    assert labels["org.neurodesk.builder"] == "buildah 1.28.2"


def test_cli_test_without_an_image_is_one_line(home: Path) -> None:
    proc = run_cli(["test", "dcm2niix"], home)
    assert_one_line_error(proc, "no image named 'dcm2niix'", "neurodesk build dcm2niix")
    proc = run_cli(["build", "dcm2niix", "--builder", "kaniko"], home)
    assert proc.returncode != 0 and "kaniko" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_help_teaches(home: Path) -> None:
    for command, needle in (
        ("build", "--base-override"),
        ("base", "--suite"),
        ("test", "deploy check"),
    ):
        proc = run_cli([command, "--help"], home)
        assert proc.returncode == 0 and needle in proc.stdout and "Examples:" in proc.stdout
