"""JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters): one ``<testsuite>`` per
image tested, one ``<testcase>`` per test, ``<failure>``/``<error>``/``<skipped>`` with the
reason and the tail of the output."""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from neurodesk.build.testing import TestResult


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters: drop them."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


def junit_xml(suites: list[tuple[str, list[TestResult]]]) -> bytes:
    root = ET.Element("testsuites")
    for name, results in suites:
        node = ET.SubElement(
            root,
            "testsuite",
            name=_clean(name),
            tests=str(len(results)),
            failures=str(sum(r.status == "fail" for r in results)),
            errors=str(sum(r.status == "error" for r in results)),
            skipped=str(sum(r.status == "skip" for r in results)),
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        for result in results:
            case = ET.SubElement(
                node,
                "testcase",
                classname=_clean(name),
                name=_clean(result.name),
                time=f"{result.seconds:.3f}",
            )
            tag = {"fail": "failure", "error": "error", "skip": "skipped"}.get(result.status)
            if tag:
                child = ET.SubElement(case, tag, message=_clean(result.detail))
                if result.output and tag != "skipped":
                    child.text = _clean("\n".join(result.output))
            elif result.output:
                ET.SubElement(case, "system-out").text = _clean("\n".join(result.output))
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def write_junit(path: Path, suites: list[tuple[str, list[TestResult]]]) -> None:
    """Write the report atomically (a CI job never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".junit-", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(junit_xml(suites))
    os.replace(tmp, path)
