"""A batch's summary, and its entry in a BIDS derivative's ``dataset_description.json``.

BIDS (>= 1.4) asks derivatives to say what generated them: ``GeneratedBy`` is a list of
``{Name, Version, Description, CodeURL, Container: {Type, Tag, URI}}`` and ``DatasetType`` is
``derivative``. We add (or replace) one entry for the batch's image, keeping everything else.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from neurodesk import __version__
from neurodesk.errors import ValidationError
from neurodesk.jobs.batch import Batch
from neurodesk.jobs.provenance import ImageInfo
from neurodesk.jobs.status import TaskState, counts
from neurodesk.paths import Paths
from neurodesk.repro.reference import best_reference, is_registry_reference
from neurodesk.store.atomic import write_text

BIDS_VERSION = "1.8.0"


def summary(batch: Batch, states: list[TaskState]) -> dict[str, Any]:
    records = [s.record for s in states if s.record is not None]
    image = batch.spec.image
    return {
        "batch_id": batch.id,
        "image": image.model_dump(),
        "command": batch.spec.command,
        "source": batch.spec.source,
        "output_root": batch.spec.output_root,
        "tasks": len(states),
        "counts": counts(states),
        "start": min((r.start for r in records), default=None),
        "end": max((r.end for r in records), default=None),
        "runtime": records[0].runtime.name + " " + records[0].runtime.version if records else None,
        "failures": [s.to_json() for s in states if s.state in ("failed", "lost", "stale")],
        "records": [str(batch.record_path(s.index)) for s in states if s.record is not None],
    }


def container_uri(image: ImageInfo) -> str:
    """A reference that resolves to the image: a registry serving its digest when one is known
    (now or when the batch was defined), else the catalog id plus digest."""
    now = best_reference(Paths.from_env(), image.id, image.digest)
    if is_registry_reference(now) or not image.reference:
        return now
    return image.reference


def generated_by(batch: Batch) -> dict[str, Any]:
    image = batch.spec.image
    command = shlex.join(batch.spec.command)
    return {
        "Name": image.name,
        "Version": image.version,
        "Description": f"neurodesk {__version__} batch {batch.id}: {command}",
        "Container": {
            "Type": "oci",
            "Tag": f"{image.name}_{image.version}:{image.builddate}",
            "URI": container_uri(image),
        },
    }


def merge_description(batch: Batch, derivative: Path) -> Path:
    """Add this batch to ``derivative/dataset_description.json`` (created when missing)."""
    path = derivative / "dataset_description.json"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ValidationError(
                f"{path} is not valid JSON: {exc}", [], hint="fix or remove it"
            ) from exc
        if not isinstance(data, dict):
            raise ValidationError(f"{path} does not hold a JSON object", [], hint="fix it")
    entry = generated_by(batch)
    data.setdefault("Name", f"{batch.spec.image.name} derivatives")
    data.setdefault("BIDSVersion", BIDS_VERSION)
    data["DatasetType"] = "derivative"
    others = [
        g
        for g in data.get("GeneratedBy", [])
        if not (isinstance(g, dict) and g.get("Container") == entry["Container"])
    ]
    data["GeneratedBy"] = [*others, entry]
    if batch.spec.bids_dir and "SourceDatasets" not in data:
        data["SourceDatasets"] = [{"URL": Path(batch.spec.bids_dir).as_uri()}]
    write_text(path, json.dumps(data, indent=2) + "\n")
    return path
