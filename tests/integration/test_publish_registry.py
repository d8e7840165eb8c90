"""Publishing to a real OCI registry (Debian's docker-registry) and interoperating with
skopeo and umoci (issue 7)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.publish import registry as publish_registry
from neurodesk.publish.registry import push_image
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import RegistryServer, tiny_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    need("docker-registry", "skopeo", "umoci")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def tiny_home(tmp_path: Path, **kwargs: object) -> tuple[Path, ImageRecord]:
    layout = tiny_layout(tmp_path / "layout", **kwargs)  # type: ignore[arg-type]
    home = tmp_path / "home"
    store = Store(Paths(home).store)
    ref = json.loads((layout / "index.json").read_text())["manifests"][-1]["annotations"]
    name_version, _, date = ref["org.opencontainers.image.ref.name"].rpartition(":")
    name, _, version = name_version.partition("_")
    record = store.import_layout(OCILayout(layout), name, version, date)
    return home, record


def test_publish_pushes_the_store_digest_and_skips_blobs_already_there(
    registry: RegistryServer, tmp_path: Path
) -> None:
    home, record = tiny_home(tmp_path, name="pushme")
    target = f"{registry.address}/lab"
    first = run_cli(["publish", "pushme", "--registry", target, "--insecure", "--json"], home)
    assert first.returncode == 0, first.stderr
    (result,) = json.loads(first.stdout)
    assert result["digest"] == record.digest
    assert result["reference"] == f"{registry.address}/lab/pushme_1.0:20260101"
    assert result["uploaded_blobs"] == 3
    client = Registry(RegistryAddress.parse(target, insecure=True))
    raw, _type, digest = client.manifest("lab/pushme_1.0", "20260101")
    assert digest == record.digest
    assert raw == Store(Paths(home).store).blob_path(record.digest).read_bytes()
    client.close()
    again = run_cli(["publish", "pushme", "--registry", target, "--insecure", "--json"], home)
    assert json.loads(again.stdout)[0]["uploaded_blobs"] == 0


def test_chunked_upload_of_a_large_blob(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, record = tiny_home(tmp_path, name="chunky", payload=300_000)
    monkeypatch.setattr("neurodesk.sources.registry.CHUNK_SIZE", 64 * 1024)
    pushed = push_image(Store(Paths(home).store), record, f"{registry.address}/ns", insecure=True)
    assert pushed.digest == record.digest and pushed.uploaded == 3
    assert publish_registry.UPLOAD_WORKERS >= 1
    fresh = tmp_path / "fresh"
    proc = run_cli(
        ["install", "chunky", "--from", f"{registry.address}/ns", "--insecure", "--json"], fresh
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["commands"] == ["tinytool"]


def test_publish_errors_are_one_line(registry: RegistryServer, tmp_path: Path) -> None:
    home, _record = tiny_home(tmp_path, name="errs")
    assert_one_line_error(
        run_cli(["publish", "nosuchtool", "--registry", f"{registry.address}/ns"], home),
        "nosuchtool",
    )
    closed = run_cli(["publish", "errs", "--registry", "127.0.0.1:9/ns", "--insecure"], home)
    assert_one_line_error(closed, "127.0.0.1:9")
    both = run_cli(["publish", "errs"], home)
    assert both.returncode != 0 and "--registry" in both.stderr


def _files(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + str(path.readlink())
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            out[rel] = f"file:{path.stat().st_size}"
    return out


def test_skopeo_and_umoci_read_what_we_publish(
    registry: RegistryServer, dcm2niix_image: ImageRecord, nd_home: Path, tmp_path: Path
) -> None:
    record = dcm2niix_image
    target = f"{registry.address}/interop"
    proc = run_cli(["publish", f"{record.name}/{record.version}", "--registry", target,
                    "--insecure"], nd_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    oci = tmp_path / "oci"
    src = f"docker://{target}/{record.name}_{record.version}:{record.builddate}"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", src, f"oci:{oci}:pulled"],
        check=True, capture_output=True,
    )  # fmt: skip
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{oci}:pulled", str(bundle)],
        check=True,
        capture_output=True,
    )
    ours, theirs = _files(record.rootfs), _files(bundle / "rootfs")
    assert ours == theirs
    samples = ["usr/bin/dcm2niix", "build.yaml", "README.md", "etc/os-release"]
    for rel in samples:
        a, b = record.rootfs / rel, bundle / "rootfs" / rel
        assert a.resolve(strict=False).name == b.resolve(strict=False).name
        if not a.is_symlink():
            assert a.read_bytes() == b.read_bytes(), rel
    # The digest skopeo sees is the one our store holds.
    inspect = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", src], check=True, capture_output=True
    )
    assert inspect.stdout == Store(Paths(nd_home).store).blob_path(record.digest).read_bytes()


def test_we_install_what_skopeo_pushes(registry: RegistryServer, tmp_path: Path) -> None:
    layout = tiny_layout(tmp_path / "layout", name="fromskopeo", version="2.1")
    dest = f"docker://{registry.address}/other/fromskopeo_2.1:20250505"
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:fromskopeo_2.1:20260101",
         dest],
        check=True, capture_output=True,
    )  # fmt: skip
    home = tmp_path / "home"
    proc = run_cli(
        ["install", "fromskopeo", "--from", f"{registry.address}/other", "--insecure", "--json"],
        home,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["image"] == "fromskopeo_2.1_20250505"
    assert data["commands"] == ["tinytool"]
    record = Store(Paths(home).store).resolve("fromskopeo/2.1")
    assert (record.rootfs / "opt/tiny/data.bin").stat().st_size == 256 * 1024
