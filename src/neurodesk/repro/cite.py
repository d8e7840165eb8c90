"""What to cite for the tools a project used: each tool's own citation, its container, Neurodesk.

For every tool: the citation its recipe gives (``structured_readme.citation`` of the image's
``/build.yaml``, else of the shipped recipe of that name, else what the catalog knows from the
upstream catalog), the container (name, version, build date, digest, where it can be fetched),
and once the Neurodesk paper. Rendered as text, BibTeX, or a CITATION.cff for a project.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurodesk.errors import NotFoundError
from neurodesk.paths import Paths
from neurodesk.repro.inside import ImageFiles
from neurodesk.repro.lockfile import LockFile
from neurodesk.repro.reference import best_reference, is_registry_reference
from neurodesk.store import ImageRecord, Store

FORMATS = ("text", "bibtex", "cff")
CFF_VERSION = "1.2.0"


@dataclass(frozen=True)
class Article:
    authors: tuple[tuple[str, str], ...]  # (family, given)
    title: str
    journal: str
    year: int
    volume: str
    pages: tuple[int, int]
    doi: str


NEURODESK = Article(
    authors=(("Renton", "Angela I."), ("Dao", "Thuy T."), ("Johnstone", "Tom")),
    title="Neurodesk: an accessible, flexible and portable data analysis environment for "
    "reproducible neuroimaging",
    journal="Nature Methods",
    year=2024,
    volume="21",
    pages=(804, 808),
    doi="10.1038/s41592-023-02145-x",
)


@dataclass
class CitedTool:
    name: str
    version: str
    builddate: str
    digest: str
    reference: str
    citation: str = ""
    citation_from: str = ""  # "image", "recipe", "upstream catalog" or ""
    url: str = ""
    licenses: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.name}_{self.version}_{self.builddate}"

    @property
    def tag(self) -> str:
        return f"{self.name}_{self.version}:{self.builddate}"

    @property
    def fetchable(self) -> bool:
        return is_registry_reference(self.reference)


def _clean(text: object) -> str:
    return " ".join(str(text).split()) if text else ""


def _recipe_facts(data: object) -> dict[str, Any]:
    """citation, url and licences from a raw recipe mapping (nothing rendered or run)."""
    if not isinstance(data, dict):
        return {}
    readme = data.get("structured_readme")
    readme = readme if isinstance(readme, dict) else {}
    licenses = [
        str(c.get("license") or c.get("name"))
        for c in data.get("copyright") or []
        if isinstance(c, dict) and (c.get("license") or c.get("name"))
    ]
    url = readme.get("documentation") or data.get("readme_url") or ""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        url = ""
    return {"citation": _clean(readme.get("citation")), "url": url, "licenses": licenses}


def _yaml(text: str | None) -> object:
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None


def _from_image(record: ImageRecord) -> dict[str, Any]:
    return _recipe_facts(_yaml(ImageFiles(record.rootfs).read_text("/build.yaml", 1 << 20)))


def _from_recipe(name: str) -> dict[str, Any]:
    from neurodesk.recipe.load import recipes_dir

    path = recipes_dir() / name / "build.yaml"
    try:
        return _recipe_facts(_yaml(path.read_text()))
    except OSError:
        return {}


def _from_catalog(paths: Paths, name: str) -> dict[str, Any]:
    """What the catalog knows (upstream recipe info, when its source gives it); never fails."""
    try:
        from neurodesk.catalog.collect import build_catalog

        tool = build_catalog(paths, remote=False, detail=True, only=name).tools.get(name)
    except Exception:  # the catalog is a best effort here: a citation must not fail on it
        return {}
    if tool is None:
        return {}
    for holder in (tool, *tool.offers):
        citation = _clean(getattr(holder, "citation", ""))
        if citation:
            return {"citation": citation, "licenses": list(tool.licenses)}
    if "upstream" in tool.sources:
        facts = _upstream_recipe(paths, name)
        if facts:
            return facts
    return {"licenses": list(tool.licenses)}


def _upstream_recipe(paths: Paths, name: str) -> dict[str, Any]:
    """Upstream's recipe facts (``catalog.recipefacts``, fetched once and cached), if this
    neurodesk has them; anything going wrong means no facts, never an error."""
    import importlib

    try:
        module = importlib.import_module("neurodesk.catalog.recipefacts")
        from neurodesk.sources.config import load_config

        settings = load_config(paths.config_file)
        url = str(getattr(settings, "recipe_url", "") or "")
        facts = module.recipe_facts(paths.home, name, url, min(settings.timeout, 5.0))
    except Exception:  # an optional, remote, best-effort source
        return {}
    if facts is None:
        return {}
    url = str(getattr(facts, "documentation", "") or "")
    return {
        "citation": _clean(getattr(facts, "citation", "")),
        "licenses": [str(x) for x in getattr(facts, "licenses", []) or []],
        "url": url if url.startswith(("https://", "http://")) else "",
    }


def describe(
    paths: Paths,
    name: str,
    version: str,
    builddate: str,
    digest: str,
    record: ImageRecord | None = None,
    reference: str = "",
) -> CitedTool:
    tool = CitedTool(
        name,
        version,
        builddate,
        digest,
        reference or best_reference(paths, f"{name}_{version}_{builddate}", digest),
    )
    if not is_registry_reference(tool.reference):
        better = best_reference(paths, tool.id, digest)
        tool.reference = better if is_registry_reference(better) else tool.reference
    for origin, facts in (
        ("image", _from_image(record) if record else {}),
        ("recipe", _from_recipe(name)),
        ("upstream catalog", _from_catalog(paths, name)),
    ):
        if facts.get("citation") and not tool.citation:
            tool.citation, tool.citation_from = facts["citation"], origin
        tool.url = tool.url or facts.get("url", "")
        tool.licenses = tool.licenses or list(facts.get("licenses") or [])
        if tool.citation:
            break
    return tool


def _record_for(store: Store, spec: str, digest: str) -> ImageRecord | None:
    try:
        record = store.resolve(spec)
    except NotFoundError:
        return None
    return record if record.digest == digest else None


def from_store(paths: Paths, specs: Iterable[str]) -> list[CitedTool]:
    store = Store(paths.store)
    out = []
    for spec in specs:
        r = store.resolve(spec)
        out.append(describe(paths, r.name, r.version, r.builddate, r.digest, r))
    return out


def from_lock(paths: Paths, lock: LockFile) -> list[CitedTool]:
    store = Store(paths.store)
    return [
        describe(
            paths,
            t.name,
            t.version,
            t.builddate,
            t.digest,
            _record_for(store, t.spec, t.digest),
            t.reference,
        )
        for t in lock.tools
    ]


def from_batch(paths: Paths, batch_ref: str) -> list[CitedTool]:
    from neurodesk.jobs.batch import load_batch

    image = load_batch(batch_ref).spec.image
    record = _record_for(
        Store(paths.store), f"{image.name}/{image.version}/{image.builddate}", image.digest
    )
    return [
        describe(
            paths,
            image.name,
            image.version,
            image.builddate,
            image.digest,
            record,
            image.reference,
        )
    ]


# -- rendering -----------------------------------------------------------------------------------
def _authors_text(article: Article) -> str:
    names = [f"{family}, {given[0]}." for family, given in article.authors]
    return ", ".join(names) + " et al."


def render_text(tools: list[CitedTool]) -> str:
    lines = []
    for tool in tools:
        lines.append(f"{tool.name} {tool.version}")
        if tool.citation:
            lines.append(f"  cite:      {tool.citation}")
        else:
            lines.append("  cite:      (the recipe gives no citation; cite the software by name,")
            lines.append("             version and URL" + (f": {tool.url})" if tool.url else ")"))
        lines.append(f"  container: {tool.tag} (build {tool.builddate})")
        lines.append(f"  digest:    {tool.digest}")
        where = tool.reference if tool.fetchable else f"{tool.reference} (no registry known)"
        lines.append(f"  fetch:     {where}")
        lines.append("")
    article = NEURODESK
    lines.append("Neurodesk (the containers and their distribution):")
    lines.append(
        f"  {_authors_text(article)} {article.title}. {article.journal} {article.volume}, "
        f"{article.pages[0]}-{article.pages[1]} ({article.year}). https://doi.org/{article.doi}"
    )
    return "\n".join(lines) + "\n"


def _bib_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _bib_escape(text: str) -> str:
    out = text.replace("\\", "\\textbackslash{}")
    for char in "{}&%$#_":
        out = out.replace(char, "\\" + char)
    return out


def _bib_entry(kind: str, key: str, fields: dict[str, str]) -> str:
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@{kind}{{{key},\n{body}\n}}\n"


def render_bibtex(tools: list[CitedTool]) -> str:
    entries = []
    for tool in tools:
        if tool.citation:
            entries.append(
                _bib_entry(
                    "misc",
                    _bib_key(f"{tool.name}_citation"),
                    {"title": _bib_escape(tool.name), "note": _bib_escape(tool.citation)},
                )
            )
        entries.append(
            _bib_entry(
                "software",
                _bib_key(f"{tool.id}_container"),
                {
                    "title": _bib_escape(f"{tool.name} {tool.version} container ({tool.tag})"),
                    "version": _bib_escape(tool.version),
                    "url": tool.url,
                    "note": _bib_escape(f"OCI image {tool.reference}"),
                    "year": tool.builddate[:4] if tool.builddate[:4].isdigit() else "",
                },
            )
        )
    article = NEURODESK
    entries.append(
        _bib_entry(
            "article",
            "renton2024neurodesk",
            {
                "author": " and ".join(f"{f}, {g}" for f, g in article.authors) + " and others",
                "title": "{" + article.title + "}",
                "journal": article.journal,
                "year": str(article.year),
                "volume": article.volume,
                "pages": f"{article.pages[0]}--{article.pages[1]}",
                "doi": article.doi,
            },
        )
    )
    return "\n".join(entries)


def cff_data(
    tools: list[CitedTool], title: str, authors: list[str], message: str | None = None
) -> dict[str, Any]:
    """A CITATION.cff (format 1.2.0) for a project that used ``tools``."""
    references: list[dict[str, Any]] = []
    for tool in tools:
        entry: dict[str, Any] = {
            "type": "software",
            "title": f"{tool.name} {tool.version} ({tool.tag})",
            "authors": [{"name": f"{tool.name} developers"}],
            "version": tool.version,
            "identifiers": [
                {
                    "type": "other",
                    "value": tool.reference,
                    "description": "container image: registry reference or catalog id, "
                    "with its sha256 digest",
                }
            ],
        }
        if tool.url:
            entry["url"] = tool.url
        if tool.licenses and all(re.fullmatch(r"[A-Za-z0-9.+\-]+", x) for x in tool.licenses):
            entry["license"] = tool.licenses[0] if len(tool.licenses) == 1 else tool.licenses
        if tool.citation:
            entry["notes"] = f"Cite as: {tool.citation}"
        references.append(entry)
    article = NEURODESK
    references.append(
        {
            "type": "article",
            "title": article.title,
            "authors": [{"family-names": f, "given-names": g} for f, g in article.authors],
            "journal": article.journal,
            "year": article.year,
            "volume": int(article.volume),
            "start": article.pages[0],
            "end": article.pages[1],
            "doi": article.doi,
        }
    )
    return {
        "cff-version": CFF_VERSION,
        "message": message
        or "If you use this work, please cite it and the software it used, listed below.",
        "title": title,
        "type": "software",
        "authors": [_cff_person(a) for a in authors] or [{"name": f"{title} authors"}],
        "references": references,
    }


def _cff_person(text: str) -> dict[str, str]:
    family, sep, given = text.partition(",")
    if sep and family.strip() and given.strip():
        return {"family-names": family.strip(), "given-names": given.strip()}
    return {"name": text.strip()}


def render_cff(tools: list[CitedTool], title: str, authors: list[str]) -> str:
    data = cff_data(tools, title, authors)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def render(
    tools: list[CitedTool], fmt: str, title: str = "", authors: list[str] | None = None
) -> str:
    if fmt == "bibtex":
        return render_bibtex(tools)
    if fmt == "cff":
        return render_cff(tools, title or Path.cwd().name, authors or [])
    return render_text(tools)
