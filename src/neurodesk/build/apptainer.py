"""Apptainer (or SingularityCE) backend: builds the context's ``Singularity`` definition file
(rendered by the recipe layer) into a SIF, then hands the store a one-layer OCI layout of it.

Apptainer keeps no per-step cache, so every build runs every step; images live as SIF files
under ``$NEURODESK_HOME/apptainer/images`` with a JSON sidecar holding their environment and
labels. Not installed on the machines this was written on: its command lines follow the
Apptainer documentation (``build``, ``--fakeroot``, ``--sandbox``, ``localimage``) and are
unit-tested, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from neurodesk.build.buildah import DEFAULT_PATH, qualify
from neurodesk.build.builder import Builder, quiet
from neurodesk.build.ocilayout import write_layout
from neurodesk.build.process import LineHook, run_logged
from neurodesk.errors import ExternalCommandError, NotFoundError
from neurodesk.paths import Paths

PROGRAMS = ("apptainer", "singularity")
DEFINITION = "Singularity"


def _program() -> str | None:
    return next((p for p in map(shutil.which, PROGRAMS) if p), None)


def safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", ref)


def local_definition(text: str, base_sif: Path | None, labels: Mapping[str, str]) -> str:
    """The recipe's definition with a local base (``Bootstrap: localimage``) and our labels."""
    if base_sif is not None:
        text = re.sub(r"(?m)^Bootstrap:\s*\S+\s*$", "Bootstrap: localimage", text, count=1)
        text = re.sub(r"(?m)^From:\s*\S+\s*$", f"From: {base_sif}", text, count=1)
    extra = "".join(f"    {k} {v}\n" for k, v in sorted(labels.items()))
    if re.search(r"(?m)^%labels\s*$", text):
        return re.sub(r"(?m)^%labels\s*\n", lambda m: m.group(0) + extra, text, count=1)
    return text.rstrip("\n") + "\n\n%labels\n" + extra


def parse_environment(text: str) -> dict[str, str]:
    """``export K="v"`` lines of the definition's ``%environment`` section."""
    section = re.search(r"(?ms)^%environment\s*\n(.*?)(?=^%|\Z)", text)
    env = {"PATH": DEFAULT_PATH}
    for key, raw in re.findall(
        r"(?m)^\s*export\s+(\w+)=(.*)$", section.group(1) if section else ""
    ):
        value = raw.strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        env[key] = value
    return env


def parse_labels(text: str) -> dict[str, str]:
    section = re.search(r"(?ms)^%labels\s*\n(.*?)(?=^%|\Z)", text)
    pairs = re.findall(r"(?m)^\s*(\S+)\s+(.*?)\s*$", section.group(1) if section else "")
    return dict(pairs)


class ApptainerBuilder(Builder):
    name = "apptainer"
    step_pattern = None

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        exe = _program()
        if exe is None:
            raise NotFoundError("apptainer is not installed", hint="install apptainer")
        self.exe = exe
        self.images = paths.home / "apptainer" / "images"

    @classmethod
    def available(cls) -> bool:
        return _program() is not None

    def sif(self, ref: str) -> Path:
        return self.images / f"{safe_name(qualify(ref))}.sif"

    def version(self) -> str:
        out = quiet([self.exe, "--version"])
        words = out.stdout.split()
        return words[-1] if out.returncode == 0 and words else "unknown"

    def has_image(self, ref: str) -> bool:
        return self.sif(ref).is_file()

    def image_id(self, ref: str) -> str | None:
        path = self.sif(ref)
        if not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"

    def _build_argv(self, target: Path, source: str) -> list[str]:
        argv = [self.exe, "build", "--force"]
        if os.geteuid() != 0:
            argv.append("--fakeroot")  # unprivileged builds need a fakeroot mapping
        return [*argv, str(target), source]

    def _build_to(self, ref: str, source: str, log: Path, cwd: Path | None = None) -> None:
        """Build into a temporary SIF and rename: a failed build leaves no image behind."""
        final = self.sif(ref)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_suffix(".sif.part")
        try:
            run_logged(self._build_argv(partial, source), log, what="apptainer build", cwd=cwd)
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)

    def pull(self, ref: str, log: Path) -> bool:
        try:
            self._build_to(ref, f"docker://{qualify(ref)}", log)
        except ExternalCommandError:
            return False
        return True

    def import_rootfs(self, tarball: Path, ref: str, log: Path) -> None:
        sandbox = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.images.parent))
        try:
            subprocess.run(["tar", "-C", str(sandbox), "-xf", str(tarball)], check=True)
            self._build_to(ref, str(sandbox), log)
        finally:
            shutil.rmtree(sandbox, ignore_errors=True)

    def definition(self, context: Path, labels: Mapping[str, str]) -> str:
        text = (context / DEFINITION).read_text()
        match = re.search(r"(?m)^From:\s*(\S+)\s*$", text)
        base = match.group(1) if match else None
        base_sif = self.sif(base) if base and self.has_image(base) else None
        return local_definition(text, base_sif, labels)

    def build(
        self,
        context: Path,
        tag: str,
        labels: Mapping[str, str],
        log: Path,
        on_line: LineHook | None = None,
    ) -> None:
        text = self.definition(context, labels)
        definition = context / "apptainer.build.def"
        definition.write_text(text)
        self._build_to(tag, str(definition), log, cwd=context)  # %files paths are relative
        sidecar = {"env": parse_environment(text), "labels": parse_labels(text)}
        self.sif(tag).with_suffix(".json").write_text(json.dumps(sidecar, indent=2))

    def export_oci(self, ref: str, dest: Path, log: Path) -> None:
        sandbox = dest.with_name(dest.name + ".sandbox")
        try:
            run_logged(
                [self.exe, "build", "--force", "--sandbox", str(sandbox), str(self.sif(ref))],
                log,
                what="apptainer build --sandbox",
            )
            meta = json.loads(self.sif(ref).with_suffix(".json").read_text())
            write_layout(sandbox, dest, meta["env"], meta["labels"])
        finally:
            shutil.rmtree(sandbox, ignore_errors=True)

    def remove_image(self, ref: str) -> None:
        self.sif(ref).unlink(missing_ok=True)
        self.sif(ref).with_suffix(".json").unlink(missing_ok=True)
