"""A layer blob for publishing: the store's own, rebuilt by the store, or fetched again.

A registry-installed image keeps no copy of its large layer blobs (the unpacked tree is the
store's copy); the store records where each was pulled from (``Store.refetch_sources``).
Publishing such an image downloads the blob again by digest from the first of those
registries that answers, checking digest and size on the way, into a scratch file removed
afterwards, so the pushed image has exactly the digests it was installed with.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.store import Store


def _registry_and_repo(source: str) -> tuple[Registry, str]:
    """``http(s)://HOST[:PORT]/v2/REPO`` (as the registry source records it)."""
    scheme, _, rest = source.partition("://")
    host, _, path = rest.partition("/")
    repo = path.removeprefix("v2/")
    if scheme not in ("http", "https") or not repo or repo == path:
        raise NeurodeskError(f"unusable recorded origin {source!r}")
    return Registry(RegistryAddress(host, "", scheme == "https")), repo


@contextmanager
def layer_blob(store: Store, digest: str, size: int) -> Iterator[Path]:
    """A path holding the verified bytes of blob ``digest`` while the block runs."""
    sources = store.refetch_sources(digest)
    if store.blob_path(digest).is_file() or not sources:
        with store.layer_blob(digest) as path:
            yield path
        return
    store.tmp_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="publish-", dir=store.tmp_root))
    try:
        errors: list[str] = []
        for source in sources:
            try:
                registry, repo = _registry_and_repo(source)
            except NeurodeskError as exc:
                errors.append(exc.message)
                continue
            try:
                registry.download_blob(repo, digest, size, scratch / "blob", None)
                break
            except NeurodeskError as exc:
                errors.append(exc.message)
            finally:
                registry.close()
        else:
            raise NotFoundError(
                f"layer {digest[:19]} was not kept and could not be fetched again: "
                + "; ".join(errors),
                hint="make its registry reachable, or install the image again",
            )
        yield scratch / "blob"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
