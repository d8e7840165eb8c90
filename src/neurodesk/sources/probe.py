"""How each source and mirror is doing: reachable, latency, throughput; and who would serve what.

What ``cvmfs_talk host probe`` tells a CVMFS user, for every channel. Latency is the time of
one small request (``/v2/`` for a registry, HEAD of the mirror's root for object storage, a
``stat`` of ``containers/`` for a tree). Throughput is measured where a sample is known: a
1 MiB Range read of one SIF that upstream's catalog lists, from object-storage mirrors.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neurodesk.paths import Paths
from neurodesk.sources.config import Config, SourceConfig
from neurodesk.sources.http import HttpSettings, make_client, open_stream, request
from neurodesk.sources.naming import Spec
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.sources.transfer import SourceError

SAMPLE = 1 << 20


@dataclass
class MirrorProbe:
    source: str
    kind: str
    mirror: str
    reachable: bool | None = None  # None: not probed
    latency_ms: float | None = None
    throughput_mbps: float | None = None  # MB/s
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tree(probe: MirrorProbe) -> None:
    root = Path(probe.mirror.removeprefix("file://"))
    start = time.perf_counter()
    try:
        ok = (root / "containers").is_dir()
    except OSError as exc:
        ok, probe.error = False, exc.strerror or str(exc)
    probe.latency_ms = (time.perf_counter() - start) * 1000
    probe.reachable = ok
    if not ok and not probe.error:
        probe.error = "not mounted (no containers/ directory)"


def _registry(probe: MirrorProbe, insecure: bool, timeout: float) -> None:
    registry = Registry(RegistryAddress.parse(probe.mirror, insecure), timeout)
    start = time.perf_counter()
    try:
        registry.ping()
        probe.reachable = True
    except SourceError as exc:
        probe.reachable, probe.error = False, exc.message
    finally:
        registry.close()
    probe.latency_ms = (time.perf_counter() - start) * 1000


def _http(probe: MirrorProbe, insecure: bool, timeout: float, samples: list[str]) -> None:
    base = probe.mirror if probe.mirror.endswith("/") else probe.mirror + "/"
    with make_client(HttpSettings(timeout=timeout), insecure) as client:
        sample = ""
        for index, name in enumerate(["", *samples]):
            start = time.perf_counter()
            try:
                answer = request(client, "HEAD", base + name)
            except SourceError as exc:
                probe.reachable, probe.error = False, exc.message
                return
            if index == 0:
                probe.latency_ms = (time.perf_counter() - start) * 1000
                probe.reachable = answer.status < 500
                if answer.status >= 500:
                    probe.error = f"HTTP {answer.status}"
                    return
            elif answer.status == 200:
                sample = name
                break
        if not sample:
            probe.error = "throughput not measured: no known SIF found here"
            return
        start = time.perf_counter()
        try:
            got = 0
            headers = {"Range": f"bytes=0-{SAMPLE - 1}"}
            with open_stream(client, "GET", base + sample, headers=headers) as body:
                for chunk in body.chunks():
                    got += len(chunk)
                    if got >= SAMPLE:
                        break
        except SourceError as exc:
            probe.error = f"throughput: {exc.message}"
            return
        elapsed = time.perf_counter() - start
        probe.throughput_mbps = got / elapsed / 1e6 if elapsed > 0 else None


def _samples(paths: Paths) -> list[str]:
    """SIF names to time downloads with: images this machine has (so likely the mirrors too),
    then the first few of upstream's catalog; at most four."""
    from neurodesk.catalog.upstream import load_cached
    from neurodesk.store import Store

    names = [f"{r.id}.simg" for r in Store(paths.store).images()] if paths.store.is_dir() else []
    try:
        catalog = load_cached(paths.home)
    except SourceError:
        catalog = None
    except Exception:
        catalog = None
    if catalog is not None:
        names += [f"{c.id}.simg" for c in catalog.containers[:3]]
    return list(dict.fromkeys(names))[:4]


def probe_sources(settings: Config, paths: Paths, probe: bool) -> list[MirrorProbe]:
    rows = [
        MirrorProbe(c.name, c.kind, mirror) for c in settings.channels() for mirror in c.mirrors
    ]
    if not probe:
        return rows
    configs = {c.name: c for c in settings.channels()}
    samples = _samples(paths)

    def run(row: MirrorProbe) -> MirrorProbe:
        config: SourceConfig = configs[row.source]
        if row.kind == "tree":
            _tree(row)
        elif row.kind in ("registry", "sif-registry"):
            _registry(row, config.insecure, min(settings.timeout, 10.0))
        else:
            _http(row, config.insecure, min(settings.timeout, 10.0), samples)
        return row

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(rows)))) as pool:
        return list(pool.map(run, rows))


@dataclass
class WhichAnswer:
    spec: str
    served_by: str | None
    where: str
    tried: list[tuple[str, str]]  # (source, what it said), in order

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "served_by": self.served_by,
            "where": self.where,
            "tried": [{"source": s, "answer": a} for s, a in self.tried],
        }


def which(paths: Paths, spec_text: str) -> WhichAnswer:
    """Which channel would serve ``spec_text`` now (asked in order; nothing is downloaded)."""
    from neurodesk.errors import NotFoundError
    from neurodesk.sources.config import load_config
    from neurodesk.sources.fetch import complete_from_catalog, open_sources, spec_for
    from neurodesk.store import Store

    spec = Spec.parse(spec_text)
    try:
        record = Store(paths.store).resolve(spec_text)
        return WhichAnswer(str(spec), "store", record.id, [("store", "has it")])
    except NotFoundError:
        pass
    settings = load_config(paths.config_file)
    exact = complete_from_catalog(paths, spec)
    tried: list[tuple[str, str]] = [("store", "not there")]
    with open_sources(paths) as sources:
        for source in sources:
            asked = spec_for(source, settings, spec, exact)
            if asked is None:
                tried.append((source.label, "not in upstream's catalog"))
                continue
            try:
                found = source.find(asked)
            except SourceError as exc:
                tried.append((source.label, f"failed: {exc.message}"))
                continue
            if found is None:
                tried.append((source.label, "not there"))
                continue
            tried.append((source.label, f"has {found.id}"))
            return WhichAnswer(str(exact or spec), source.label, found.where, tried)
    return WhichAnswer(str(exact or spec), None, "", tried)
