"""Software bills of materials of an image: CycloneDX (cyclonedx-python-lib) and SPDX 2.3 JSON
(spdx-tools), from the packages :mod:`neurodesk.repro.packages` finds inside it."""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import UTC, datetime

from neurodesk import __version__
from neurodesk.paths import Paths
from neurodesk.repro.inside import ImageFiles
from neurodesk.repro.packages import Inventory, Package, inventory
from neurodesk.repro.reference import best_reference, is_registry_reference
from neurodesk.store import ImageRecord

FORMATS = ("cyclonedx", "spdx")


def image_inventory(record: ImageRecord) -> Inventory:
    return inventory(ImageFiles(record.rootfs))


def _image_purl(record: ImageRecord) -> str:
    from packageurl import PackageURL

    return PackageURL(
        type="oci",
        name=f"{record.name}_{record.version}".lower(),
        version=record.digest,
        qualifiers={"tag": record.builddate},
    ).to_string()


def _sorted(packages: list[Package]) -> list[Package]:
    unique = {p.purl: p for p in packages}
    return [unique[k] for k in sorted(unique)]


def to_cyclonedx(record: ImageRecord, found: Inventory) -> str:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import Tool
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom()
    bom.metadata.tools.tools.add(Tool(vendor="neurodesk", name="neurodesk", version=__version__))
    root = Component(
        type=ComponentType.CONTAINER,
        name=f"{record.name}_{record.version}",
        version=record.builddate,
        bom_ref=_image_purl(record),
        purl=PackageURL.from_string(_image_purl(record)),
        properties=[Property(name="neurodesk:digest", value=record.digest)],
    )
    bom.metadata.component = root
    components = []
    for package in _sorted(found.packages):
        component = Component(
            type=ComponentType.LIBRARY,
            name=package.name,
            version=package.version or None,
            bom_ref=package.purl,
            purl=PackageURL.from_string(package.purl),
            properties=[Property(name="neurodesk:found-in", value=package.source)],
        )
        if package.homepage.startswith(("http://", "https://")):
            with contextlib.suppress(ValueError):
                component.external_references.add(
                    ExternalReference(
                        type=ExternalReferenceType.WEBSITE, url=XsUri(package.homepage)
                    )
                )
        components.append(component)
        bom.components.add(component)
    bom.register_dependency(root, components)
    return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"


def to_spdx(record: ImageRecord, found: Inventory, paths: Paths | None = None) -> str:
    from spdx_tools.spdx.model.actor import Actor, ActorType
    from spdx_tools.spdx.model.document import CreationInfo, Document
    from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory
    from spdx_tools.spdx.model.package import Package as SpdxPackage
    from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
    from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    reference = best_reference(paths or Paths.from_env(), record.id, record.digest)
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"neurodesk:{record.id}@{record.digest}")
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{record.id} packages",
        document_namespace=f"urn:uuid:{namespace}",
        creators=[Actor(ActorType.TOOL, f"neurodesk-{__version__}")],
        created=datetime.now(UTC).replace(microsecond=0),
    )
    image = SpdxPackage(
        spdx_id="SPDXRef-image",
        name=f"{record.name}_{record.version}",
        version=record.builddate,
        download_location=reference if is_registry_reference(reference) else SpdxNoAssertion(),
        files_analyzed=False,
        external_references=[
            ExternalPackageRef(
                ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", _image_purl(record)
            )
        ],
    )
    packages = [image]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-image")]
    for number, package in enumerate(_sorted(found.packages)):
        spdx_id = f"SPDXRef-{package.ecosystem}-{number}"
        packages.append(
            SpdxPackage(
                spdx_id=spdx_id,
                name=package.name,
                version=package.version or None,
                download_location=SpdxNoAssertion(),
                files_analyzed=False,
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl
                    )
                ],
            )
        )
        relationships.append(Relationship("SPDXRef-image", RelationshipType.CONTAINS, spdx_id))
    document = Document(info, packages=packages, relationships=relationships)
    out = io.StringIO()
    write_document_to_stream(document, out, validate=True)
    return out.getvalue() + "\n"


def render(record: ImageRecord, fmt: str) -> str:
    found = image_inventory(record)
    return to_spdx(record, found) if fmt == "spdx" else to_cyclonedx(record, found)
