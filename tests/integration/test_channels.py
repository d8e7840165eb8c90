"""Upstream's four channels, each replicated on loopback, through the defaults a user has:
install and run through each, take each away in turn and the next serves, all down is one
line; SIF artifacts pushed by our publisher and by oras-py; integrity of every byte (issue 12).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from neurodesk.store.atomic import write_text
from tests.conftest import assert_one_line_error, run_cli
from tests.httpserve import Fault, FileServer
from tests.integration.channel_replicas import (
    DATE,
    ID,
    NAME,
    VERSION,
    Pushed,
    TokenRegistry,
    TokenServer,
    make_rootfs,
    make_sif,
    make_tree,
    push_image,
    write_auth_file,
)
from tests.integration.conftest import need
from tests.integration.distribution_helpers import free_port
from tests.upstream_data import write_apps_json

pytestmark = pytest.mark.integration

CHANNELS = ["cvmfs", "sif-artifacts", "object-storage", "registry-images"]


@dataclass
class Replicas:
    root: Path
    tree: Path
    sif: Path
    registry: TokenRegistry
    tokens: TokenServer
    pushed: Pushed
    fast: FileServer
    slow: FileServer
    apps_json: Path
    auth_file: Path

    def live(self, channel: str) -> dict[str, object]:
        if channel == "cvmfs":
            return {"mirrors": [str(self.tree)]}
        if channel in ("sif-artifacts", "registry-images"):
            return {"mirrors": [f"{self.registry.address}/neurodesk"], "insecure": True}
        return {"mirrors": [self.fast.url, self.slow.url]}

    def dead(self, channel: str) -> dict[str, object]:
        port = free_port()  # nothing listens there
        if channel == "cvmfs":
            return {"mirrors": [str(self.root / "no-cvmfs")]}
        if channel in ("sif-artifacts", "registry-images"):
            return {"mirrors": [f"127.0.0.1:{port}/neurodesk"], "insecure": True}
        return {"mirrors": [f"http://127.0.0.1:{port}/"]}

    def configure(self, home: Path, live: set[str], **extra: object) -> None:
        """config.yaml with only the defaults, re-pointed: ``live`` ones at the replicas."""
        defaults = {c: (self.live(c) if c in live else self.dead(c)) for c in CHANNELS}
        config = {"timeout": 3, "retries": 1, "defaults": defaults, **extra}
        write_text(home / "config.yaml", json.dumps(config))

    def pushed_sif_digest(self) -> str:
        import hashlib

        return "sha256:" + hashlib.sha256(self.sif.read_bytes()).hexdigest()

    def env(self) -> dict[str, str]:
        return {"NEURODESK_CATALOG_URL": str(self.apps_json), "NO_PROXY": "127.0.0.1"}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    need("bwrap", "docker-registry", "mksquashfs", "unsquashfs")
    root = tmp_path_factory.mktemp("channels")
    rootfs = make_rootfs(root / "rootfs")
    tree = make_tree(rootfs, root / "cvmfs")
    objects = root / "objects"
    objects.mkdir()
    sif = make_sif(rootfs, objects / f"{ID}.simg")
    tokens = TokenServer(root).start()
    registry = TokenRegistry(root / "registry", tokens).start()
    fast = FileServer(objects).__enter__()
    slow = FileServer(objects, fault=Fault(delay=0.02)).__enter__()
    try:
        auth = write_auth_file(root / "auth.json", registry.address)
        (root / "blobs").mkdir()
        pushed = push_image(registry.address, rootfs, root / "blobs", auth)
        # The SIF artifact, pushed by our publisher (as the lab's admin: push needs a login).
        from neurodesk.publish.sif_artifact import push_sif_artifact
        from neurodesk.sources.registry import Registry, RegistryAddress

        os.environ["REGISTRY_AUTH_FILE"] = str(auth)
        try:
            client = Registry(RegistryAddress.parse(registry.address, insecure=True))
            push_sif_artifact(client, pushed.repo, pushed.tag, sif, f"{ID}.sif")
            client.close()
        finally:
            del os.environ["REGISTRY_AUTH_FILE"]
        apps_json = write_apps_json(root / "apps.json")
        yield Replicas(root, tree, sif, registry, tokens, pushed, fast, slow, apps_json, auth)
    finally:
        slow.__exit__(None, None, None)
        fast.__exit__(None, None, None)
        registry.stop()
        tokens.stop()


def fresh_home(tmp_path: Path, replicas: Replicas, live: set[str]) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    replicas.configure(home, live)
    update = run_cli(["update"], home, replicas.env())
    assert update.returncode == 0, update.stderr
    return home


@pytest.mark.parametrize("serving", range(len(CHANNELS)), ids=CHANNELS)
def test_each_channel_serves_when_those_before_it_are_gone(
    tmp_path: Path, replicas: Replicas, serving: int
) -> None:
    channel = CHANNELS[serving]
    home = fresh_home(tmp_path, replicas, set(CHANNELS[serving:]))
    which = run_cli(["sources", "--which", f"{NAME}/{VERSION}", "--json"], home, replicas.env())
    assert which.returncode == 0, which.stderr
    answer = json.loads(which.stdout)
    assert answer["served_by"] == channel and answer["spec"] == f"{NAME}/{VERSION}/{DATE}"
    assert [t["source"] for t in answer["tried"]][1:] == CHANNELS[: serving + 1]
    installed = run_cli(["install", NAME, "--json"], home, replicas.env())
    assert installed.returncode == 0, installed.stderr
    ran = run_cli(["exec", NAME, "--", "fslhello"], home, cwd=tmp_path)
    assert ran.returncode == 0 and "fsl says hello" in ran.stdout, ran.stderr
    info = json.loads(run_cli(["info", NAME, "--json", "--local"], home).stdout)
    stored = [o for o in info["offers"] if o["source"] == "store"]
    assert [(o["version"], o["builddate"]) for o in stored] == [(VERSION, DATE)]
    if channel == "sif-artifacts":
        assert stored[0]["origin"]["verified"] == "publisher"
        assert stored[0]["origin"]["sha256"] == replicas.pushed_sif_digest()
    if channel == "object-storage":
        # The registry channels are gone: nobody vouches for the file's bytes.
        assert stored[0]["origin"]["verified"] == "unverified-by-publisher"
        assert stored[0]["origin"]["sha256"] == replicas.pushed_sif_digest()
    assert not list((home / "cache" / "downloads").glob("*"))  # nothing left behind


def test_object_storage_is_checked_against_the_registrys_digest(
    tmp_path: Path, replicas: Replicas
) -> None:
    home = fresh_home(tmp_path, replicas, set(CHANNELS))
    served_before = {s.url: len(s.requests) for s in (replicas.fast, replicas.slow)}
    installed = run_cli(["install", NAME, "--from", "object-storage"], home, replicas.env())
    assert installed.returncode == 0, installed.stderr
    info = json.loads(run_cli(["info", NAME, "--json", "--local"], home).stdout)
    origin = next(o for o in info["offers"] if o["source"] == "store")["origin"]
    assert origin["verified"] == "publisher" and origin["channel"] == "object-storage"
    # Both mirrors served Range pieces.
    for server in (replicas.fast, replicas.slow):
        ranged = [r for r in server.requests[served_before[server.url] :] if "Range" in r[2]]
        assert ranged, f"{server.url} served no piece"


def test_a_corrupt_mirror_never_reaches_the_store(tmp_path: Path, replicas: Replicas) -> None:
    home = fresh_home(tmp_path, replicas, set(CHANNELS))
    replicas.fast.fault = Fault(corrupt=True)
    replicas.slow.fault = Fault(corrupt=True)
    try:
        proc = run_cli(["install", NAME, "--from", "object-storage"], home, replicas.env())
    finally:
        replicas.fast.fault = Fault()
        replicas.slow.fault = Fault(delay=0.02)
    assert_one_line_error(proc, "publisher's digest")
    assert not (home / "store" / "refs").exists() or not list(
        (home / "store" / "refs").rglob("*.json")
    )
    assert not list((home / "cache" / "downloads").glob("*.simg"))


def test_all_channels_down_is_one_line(tmp_path: Path, replicas: Replicas) -> None:
    home = fresh_home(tmp_path, replicas, set())
    proc = run_cli(["install", NAME], home, replicas.env())
    assert_one_line_error(proc, "cvmfs", "sif-artifacts", "object-storage", "registry-images")
    assert not (home / "installs").exists() or not list((home / "installs").rglob("fslhello"))


def test_unknown_container_suggests_close_matches(tmp_path: Path, replicas: Replicas) -> None:
    home = fresh_home(tmp_path, replicas, set(CHANNELS))
    proc = run_cli(["install", "fsll"], home, replicas.env())
    assert_one_line_error(proc, "did you mean fsl")


def test_install_from_a_sif_file_and_a_sif_url(tmp_path: Path, replicas: Replicas) -> None:
    home = fresh_home(tmp_path, replicas, set())
    local = run_cli(["install", f"{NAME}/{VERSION}", "--from", str(replicas.sif)], home)
    assert local.returncode == 0, local.stderr
    assert "fsl says hello" in run_cli(["exec", NAME, "--", "fslhello"], home, cwd=tmp_path).stdout
    other = tmp_path / "home2"
    other.mkdir()
    url = f"{replicas.fast.url}{ID}.simg"
    remote = run_cli(["install", NAME, "--from", url], other, replicas.env())
    assert remote.returncode == 0, remote.stderr
    info = json.loads(run_cli(["info", NAME, "--json", "--local"], other).stdout)
    stored = next(o for o in info["offers"] if o["source"] == "store")
    assert (stored["version"], stored["builddate"]) == (VERSION, DATE)  # from the file name
    assert stored["origin"]["verified"] == "unverified-by-publisher"
    missing = run_cli(["install", NAME, "--from", str(tmp_path / "nope.sif")], tmp_path / "h3")
    assert_one_line_error(missing, "nope.sif")


def test_publish_sif_then_install_from_it_and_oras_interop(
    tmp_path: Path, replicas: Replicas
) -> None:
    """A lab's own distribution: our publish --sif pushes image + SIF referrer (tag schema);
    oras-py pulls that SIF; oras-py pushes another SIF referrer; our channel installs it."""
    import hashlib

    import oras.client
    import oras.oci

    home = fresh_home(tmp_path, replicas, {"registry-images"})
    assert run_cli(["install", NAME], home, replicas.env()).returncode == 0  # an OCI image
    lab = f"{replicas.registry.address}/lab"
    login = {"REGISTRY_AUTH_FILE": str(replicas.auth_file)}
    anonymous = run_cli(["publish", NAME, "--registry", lab, "--insecure", "--sif"], home)
    assert_one_line_error(anonymous, "access denied")  # push needs the lab's login
    published = run_cli(
        ["publish", NAME, "--registry", lab, "--insecure", "--sif", "--json"], home, login
    )
    assert published.returncode == 0, published.stderr
    sif = json.loads(published.stdout)[0]["sif"]
    assert sif["via"] == "tag schema"  # Debian's docker-registry has no Referrers API
    # oras-py, an independent client, pulls the artifact our publisher pushed.
    client = oras.client.OrasClient(hostname=replicas.registry.address, insecure=True)
    repo = f"lab/{NAME}_{VERSION}"
    files = client.pull(target=f"{lab}/{NAME}_{VERSION}@{sif['artifact']}", outdir=str(tmp_path))
    pulled = Path(files[0]).read_bytes()
    assert "sha256:" + hashlib.sha256(pulled).hexdigest() == sif["digest"]
    # Our channel, configured as a lab source, installs from what we published.
    lab_home = tmp_path / "lab-home"
    lab_home.mkdir()
    lab_source = {"name": "lab", "kind": "sif-registry", "mirrors": [lab], "insecure": True}
    config = {"sources": [lab_source], "defaults": dict.fromkeys(CHANNELS, False)}
    (lab_home / "config.yaml").write_text(json.dumps(config))
    first = run_cli(["install", f"{NAME}/{VERSION}"], lab_home)
    assert first.returncode == 0, first.stderr
    assert "fsl says hello" in run_cli(["exec", NAME, "--", "fslhello"], lab_home).stdout
    # oras-py pushes a newer SIF for the same image; the tag-schema index is extended with it.
    from neurodesk.publish.sif_artifact import add_to_tag_schema
    from neurodesk.sources.registry import Registry, RegistryAddress

    other = make_sif(make_rootfs(tmp_path / "rootfs2"), tmp_path / "other.sif")
    registry = Registry(RegistryAddress.parse(replicas.registry.address, insecure=True))
    raw, media_type, subject = registry.manifest(repo, DATE)
    grant = [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    client.auth.set_token_auth(replicas.tokens.sign("labadmin", grant))
    answer = client.push(
        target=f"{lab}/{NAME}_{VERSION}",
        files=[f"{other}:application/vnd.sylabs.sif.layer.v1.sif"],
        subject=oras.oci.Subject(mediaType=media_type, digest=subject, size=len(raw)),
        manifest_annotations={"org.opencontainers.image.created": "2999-01-01T00:00:00Z"},
        disable_path_validation=True,
    )
    artifact = answer.headers["Docker-Content-Digest"]
    os.environ["REGISTRY_AUTH_FILE"] = str(replicas.auth_file)
    try:
        manifest = registry.manifest(repo, artifact)[0]
        add_to_tag_schema(registry, repo, subject, artifact, len(manifest), "2999-01-01T00:00:00Z")
    finally:
        del os.environ["REGISTRY_AUTH_FILE"]
        registry.close()
    newer = tmp_path / "newer-home"
    newer.mkdir()
    (newer / "config.yaml").write_text(json.dumps(config))
    second = run_cli(["install", f"{NAME}/{VERSION}"], newer)
    assert second.returncode == 0, second.stderr
    info = json.loads(run_cli(["info", NAME, "--json", "--local"], newer).stdout)
    origin = next(o for o in info["offers"] if o["source"] == "store")["origin"]
    assert origin["sha256"] == "sha256:" + hashlib.sha256(other.read_bytes()).hexdigest()
    assert origin["verified"] == "publisher"


def only(replicas: Replicas, home: Path, channel: str, mirrors: list[str]) -> None:
    """config.yaml with every built-in channel removed but ``channel``, at ``mirrors``."""
    defaults: dict[str, object] = dict.fromkeys(CHANNELS, False)
    defaults[channel] = {"mirrors": mirrors, "insecure": True}
    config = {"timeout": 2, "retries": 1, "low_speed_time": 2, "defaults": defaults}
    (home / "config.yaml").write_text(json.dumps(config))
    assert run_cli(["update"], home, replicas.env()).returncode == 0


FAULTS = [
    ("object-storage", Fault(status=500), "HTTP 500"),
    ("object-storage", Fault(status=429), "HTTP 429"),
    ("object-storage", Fault(status=401), "HTTP 401"),
    ("object-storage", Fault(status=404), "object-storage: not there"),
    ("object-storage", Fault(status=403), "object-storage: not there"),
    ("object-storage", Fault(stall=6), "object-storage"),
    ("sif-artifacts", Fault(html=True), "HTML"),
    ("sif-artifacts", Fault(status=401), "access denied"),
    ("sif-artifacts", Fault(status=403), "access denied"),
    ("sif-artifacts", Fault(status=500), "HTTP 500"),
    ("registry-images", Fault(status=404), "registry-images: not there"),
    ("registry-images", Fault(html=True), "HTML"),
]


@pytest.mark.parametrize(
    ("channel", "fault", "needle"), FAULTS, ids=[f"{c}-{n}" for c, _f, n in FAULTS]
)
def test_a_faulty_channel_is_one_line_and_leaves_nothing(
    tmp_path: Path, replicas: Replicas, channel: str, fault: Fault, needle: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with FileServer(tmp_path, fault=fault) as server:
        address = server.url if channel == "object-storage" else server.url.removeprefix("http://")
        only(
            replicas,
            home,
            channel,
            [address.rstrip("/") + ("/" if channel == "object-storage" else "/neurodesk")],
        )
        proc = run_cli(["install", NAME], home, replicas.env(), timeout=120)
    assert_one_line_error(proc, needle)
    assert not (home / "store" / "refs").exists() or not list((home / "store" / "refs").rglob("*"))
    assert (
        not list((home / "cache" / "downloads").glob("*"))
        if (home / "cache" / "downloads").exists()
        else True
    )


def test_retry_after_is_honoured_then_the_next_channel_serves(
    tmp_path: Path, replicas: Replicas
) -> None:
    home = fresh_home(tmp_path, replicas, {"object-storage"})
    with FileServer(tmp_path, fault=Fault(status=429, retry_after="1")) as busy:
        config = json.loads((home / "config.yaml").read_text())
        config["defaults"]["sif-artifacts"] = {
            "mirrors": [busy.url.removeprefix("http://").rstrip("/") + "/neurodesk"],
            "insecure": True,
        }
        (home / "config.yaml").write_text(json.dumps(config))
        proc = run_cli(["install", NAME, "--json"], home, replicas.env())
        times = [t for _m, _p, _h, t in busy.timed]
    assert proc.returncode == 0, proc.stderr
    assert len(times) >= 2 and max(b - a for a, b in itertools.pairwise(times)) >= 0.9
    info = json.loads(run_cli(["info", NAME, "--json", "--local"], home).stdout)
    assert next(o for o in info["offers"] if o["source"] == "store")["origin"]["channel"] == (
        "object-storage"
    )


def test_a_squid_in_front_serves_the_second_install_from_its_cache(
    tmp_path: Path, replicas: Replicas
) -> None:
    need("squid")
    from tests.integration.squid import Squid

    proxy = Squid().start()
    try:
        env = {
            **replicas.env(),
            "NO_PROXY": "",
            "HTTP_PROXY": proxy.url,
            "HTTPS_PROXY": proxy.url,
        }
        gets: list[int] = []
        for round_ in ("first", "second"):
            home = tmp_path / round_
            home.mkdir()
            only(replicas, home, "object-storage", [replicas.fast.url])
            before = len(replicas.fast.requests)
            proc = run_cli(["install", NAME], home, env)
            assert proc.returncode == 0, proc.stderr
            new = replicas.fast.requests[before:]
            gets.append(sum(1 for method, path, _h in new if method == "GET"))
            ran = run_cli(["exec", NAME, "--", "fslhello"], home, cwd=tmp_path)
            assert "fsl says hello" in ran.stdout, ran.stderr
        time.sleep(0.5)  # squid writes its access log line after the answer
        sif_lines = [line for line in proxy.access() if f"{ID}.simg" in line]
    finally:
        proxy.stop()
    assert gets[0] >= 1, "the first install went through squid to the origin"
    assert gets[1] == 0, f"the second install reached the origin {gets[1]} times"
    assert any("HIT/" in line for line in sif_lines), sif_lines


def test_sources_probe_reports_every_mirror(tmp_path: Path, replicas: Replicas) -> None:
    home = fresh_home(tmp_path, replicas, {"cvmfs", "object-storage", "registry-images"})
    assert run_cli(["install", NAME], home, replicas.env()).returncode == 0  # a sample to time
    plain = run_cli(["sources", "--json"], home, replicas.env())
    assert next(r["source"] for r in json.loads(plain.stdout)) == "cvmfs"
    assert all(r["reachable"] is None for r in json.loads(plain.stdout))  # nothing contacted
    proc = run_cli(["sources", "--probe", "--json"], home, replicas.env())
    assert proc.returncode == 0, proc.stderr
    rows = {(r["source"], r["mirror"]): r for r in json.loads(proc.stdout)}
    state = {source: r["reachable"] for (source, _m), r in rows.items()}
    assert state == {
        "cvmfs": True,
        "sif-artifacts": False,
        "object-storage": True,
        "registry-images": True,
    }
    objects = [r for (source, _m), r in rows.items() if source == "object-storage"]
    assert len(objects) == 2 and all(r["throughput_mbps"] and r["latency_ms"] for r in objects)
    assert rows[("sif-artifacts", next(m for s, m in rows if s == "sif-artifacts"))]["error"]
    table = run_cli(["sources", "--probe"], home, replicas.env())
    assert "DOWN" in table.stdout and "MB/s" in table.stdout
