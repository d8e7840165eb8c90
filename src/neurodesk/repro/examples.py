"""The example notebooks: discovered, run top to bottom (nbclient), rendered to a static site.

Each notebook says in its metadata what it needs::

    "metadata": {"neurodesk": {"images": ["dcm2niix"], "kernel": "host", "heavy": false}}

``images``: tools it runs (all must be in the store, else the notebook is skipped with that
reason); ``kernel``: ``host`` (this Python, calling tools through ``neurodesk exec``) or the
name of an image whose Python runs the notebook (see :mod:`neurodesk.repro.kernel`);
``heavy``: its image takes minutes to build (it is skipped, not built, when absent).
Any cell that raises fails the notebook; every notebook (run or not) gets an HTML page.
"""

from __future__ import annotations

import html
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.paths import Paths
from neurodesk.repro.kernel import (
    HOST_KERNEL,
    host_kernelspec,
    image_kernelspec,
    image_python_version,
    write_kernelspec,
)
from neurodesk.store import Store
from neurodesk.store.atomic import write_text

DEFAULT_TIMEOUT = 600.0


def examples_dir() -> Path:
    """``examples/`` here when it exists, else the one of this checkout."""
    here = Path("examples")
    return here if here.is_dir() else Path(__file__).resolve().parents[3] / "examples"


@dataclass(frozen=True)
class Example:
    path: Path
    images: tuple[str, ...] = ()
    kernel: str = HOST_KERNEL
    heavy: bool = False
    title: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class Outcome:
    example: Example
    status: str  # "passed", "failed" or "skipped"
    reason: str = ""
    seconds: float = 0.0
    page: str = ""  # the HTML page's file name in the site
    cells: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.example.name,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 1),
            "images": list(self.example.images),
            "kernel": self.example.kernel,
            "heavy": self.example.heavy,
            "page": self.page,
        }


def _read(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        raise ValidationError(f"{path} is not a notebook: {exc}".splitlines()[0], []) from None


def _title(notebook: Any) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in str(cell.source).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return ""


def discover(directory: Path, only: tuple[str, ...] = ()) -> list[Example]:
    if not directory.is_dir():
        raise NotFoundError(f"no examples directory {directory}", hint="give the directory")
    found = []
    for path in sorted(directory.glob("*.ipynb")):
        if only and path.stem not in only:
            continue
        notebook = _read(path)
        meta = notebook.metadata.get("neurodesk") or {}
        images = meta.get("images") or []
        kernel = meta.get("kernel") or HOST_KERNEL
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise ValidationError(f"{path}: metadata.neurodesk.images must be a list of names", [])
        found.append(
            Example(path, tuple(images), str(kernel), bool(meta.get("heavy")), _title(notebook))
        )
    if only and len(found) < len(set(only)):
        missing = sorted(set(only) - {e.name for e in found})
        raise NotFoundError(f"no example named {', '.join(missing)} in {directory}")
    return found


def _skip_reason(paths: Paths, example: Example) -> str:
    store = Store(paths.store)
    for name in (*example.images, *([example.kernel] if example.kernel != HOST_KERNEL else [])):
        try:
            store.resolve(name)
        except NotFoundError:
            cost = " (a heavy image: minutes to build)" if example.heavy else ""
            return f"image '{name}' is not in the store: neurodesk build {name}{cost}"
    if example.kernel != HOST_KERNEL:
        import sys

        version = image_python_version(store.resolve(example.kernel))
        ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if version != ours:
            return f"the kernel image '{example.kernel}' has Python {version}, this one {ours}"
    return ""


def _first_error(notebook: Any) -> str:
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
    return ""


def _render(notebook: Any, page: Path) -> None:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()  # type: ignore[no-untyped-call]
    body, _resources = exporter.from_notebook_node(notebook)
    write_text(page, body)


def run_example(
    paths: Paths, example: Example, work: Path, site: Path, kernels: Path, timeout: float
) -> Outcome:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = _read(example.path)
    outcome = Outcome(example, "skipped", page=f"{example.name}.html")
    outcome.reason = _skip_reason(paths, example)
    if outcome.reason:
        _render(notebook, site / outcome.page)
        return outcome
    if example.kernel == HOST_KERNEL:
        kernel_name = "nd-examples-host"
        write_kernelspec(kernels, kernel_name, host_kernelspec())
    else:
        image = Store(paths.store).resolve(example.kernel)
        kernel_name = f"nd-examples-{image.name}".lower()
        write_kernelspec(kernels, kernel_name, image_kernelspec(paths, image))
    work.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(work)}},
        allow_errors=False,
    )
    started = time.monotonic()
    kernel_log = paths.logs / "examples" / f"{example.name}.kernel.log"
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    with kernel_log.open("wb") as log:  # the kernel's own chatter, kept out of the report
        try:
            client.execute(stdout=log, stderr=log)
            outcome.status = "passed"
        except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as exc:
            outcome.status = "failed"
            first = str(exc).strip().splitlines()
            outcome.reason = _first_error(notebook) or (first[-1] if first else type(exc).__name__)
    outcome.seconds = time.monotonic() - started
    outcome.cells = sum(1 for c in notebook.cells if c.cell_type == "code")
    _render(notebook, site / outcome.page)
    return outcome


def write_index(site: Path, outcomes: list[Outcome]) -> Path:
    rows = []
    for o in outcomes:
        title = html.escape(o.example.title or o.example.name)
        rows.append(
            f'<tr class="{o.status}"><td><a href="{html.escape(o.page)}">{title}</a></td>'
            f"<td>{o.status}</td><td>{html.escape(', '.join(o.example.images)) or '-'}</td>"
            f"<td>{html.escape(o.example.kernel)}</td><td>{o.seconds:.1f} s</td>"
            f"<td>{html.escape(o.reason)}</td></tr>"
        )
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>neurodesk examples</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left}"
        ".passed td:nth-child(2){color:green}.failed td:nth-child(2){color:#b00}"
        ".skipped td:nth-child(2){color:#888}</style></head><body>\n"
        "<h1>neurodesk example notebooks</h1>\n<table><tr><th>notebook</th><th>status</th>"
        "<th>images</th><th>kernel</th><th>time</th><th>note</th></tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )
    write_text(site / "index.html", page)
    return site / "index.html"


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    site: Path | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_examples(
    paths: Paths,
    directory: Path,
    site: Path,
    only: tuple[str, ...] = (),
    timeout: float = DEFAULT_TIMEOUT,
    say: Any = None,
) -> Report:
    examples = discover(directory, only)
    site.mkdir(parents=True, exist_ok=True)
    report = Report(site=site)
    with tempfile.TemporaryDirectory(prefix="nd-examples-") as scratch:
        jupyter = Path(scratch) / "jupyter"
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(jupyter), old) if p)
        try:
            for example in examples:
                work = paths.work / "examples" / example.name
                outcome = run_example(paths, example, work, site, jupyter / "kernels", timeout)
                report.outcomes.append(outcome)
                if say:
                    say(outcome)
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old
    write_index(site, report.outcomes)
    return report
