"""Catalog merging, search ranking, naming and README descriptions (issue 7)."""

from __future__ import annotations

from neurodesk.catalog.collect import Offer, Tool, merge
from neurodesk.catalog.imageinfo import first_sentence
from neurodesk.catalog.search import search
from neurodesk.sources.naming import Available, Spec, newest, split_id


def catalog() -> dict[str, Tool]:
    return merge(
        [
            Offer("mrtrix3", "3.0.4", "20240101", "store", ["diffusion imaging"], ["mrconvert"],
                  "MRtrix3 for diffusion MRI"),
            Offer("mrtrix3", "3.0.2", "20230101", "site", ["diffusion imaging"]),
            Offer("dcm2niix", "1.0.2022", "", "recipes", ["data organisation"], [],
                  "DICOM to NIfTI converter"),
            Offer("mrtrix3tissue", "5.2", "20220101", "site", ["diffusion imaging"]),
            Offer("fsl", "6.0", "20240101", "site", ["functional imaging"], ["bet"], "",
                  "uses mrtrix"),
        ]
    )  # fmt: skip


def test_tools_merge_versions_and_sources() -> None:
    tools = catalog()
    mrtrix = tools["mrtrix3"]
    assert mrtrix.versions == ["3.0.2", "3.0.4"]
    assert mrtrix.sources == ["site", "store"]
    assert mrtrix.commands == ["mrconvert"]
    assert mrtrix.to_json()["categories"] == ["diffusion imaging"]


def test_search_ranks_name_matches_first() -> None:
    hits = search(catalog(), "mrtrix")
    assert [(h.tool.name, h.reason) for h in hits] == [
        ("mrtrix3", "name"),
        ("mrtrix3tissue", "name"),
        ("fsl", "readme"),
    ]
    assert [h.tool.name for h in search(catalog(), "MRTRIX3")][:1] == ["mrtrix3"]
    assert [h.tool.name for h in search(catalog(), "nifti")] == ["dcm2niix"]
    assert [h.reason for h in search(catalog(), "bet")] == ["command"]
    assert search(catalog(), "nothing-like-this") == []


def test_specs_ids_and_newest() -> None:
    assert Spec.parse("mrtrix3/3.0.4/20240101") == Spec("mrtrix3", "3.0.4", "20240101")
    assert split_id("mrtrix3_3.0.4_20240101") == ("mrtrix3", "3.0.4", "20240101")
    assert split_id("my_tool_1.0_20240101", name="my_tool") == ("my_tool", "1.0", "20240101")
    assert split_id("nodate_1.0") is None
    offers = [Available("a", v, d, "") for v, d in [("1.9", "2"), ("1.10", "1"), ("1.10", "3")]]
    assert newest(offers, Spec("a")) == offers[2]
    assert newest(offers, Spec("a", "1.9")) == offers[0]
    assert newest(offers, Spec("b")) is None


def test_first_sentence_skips_headings_and_templates() -> None:
    readme = "## tool/{{ context.version }}\n\nTool converts things.\n\nExample:\n"
    assert first_sentence(readme) == "Tool converts things."
    assert first_sentence("# Only a heading\n") == "Only a heading"


def test_recipe_commands_come_from_deploy_bins_anywhere() -> None:
    from neurodesk.catalog.collect import _deploy_bins

    directives = [
        {"install": "x"},
        {"deploy": {"bins": ["/opt/x/bin/xconv", "xview"]}},
        {"group": [{"deploy": {"bins": ["inner"], "path": ["/opt/bin"]}}]},
        {"deploy": {"bins": ["{{ context.name }}"]}},
    ]
    assert _deploy_bins(directives, ["top"]) == ["inner", "top", "xconv", "xview"]
