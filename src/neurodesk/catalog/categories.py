"""The fixed menu categories of upstream's apps.json."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "bids apps",
    "body",
    "cryo EM",
    "data organisation",
    "diffusion imaging",
    "electrophysiology",
    "functional imaging",
    "hippocampus",
    "image reconstruction",
    "image registration",
    "image segmentation",
    "machine learning",
    "molecular biology",
    "phase processing",
    "programming",
    "quality control",
    "quantitative imaging",
    "rodent imaging",
    "shape analysis",
    "spectroscopy",
    "spine",
    "statistics",
    "structural imaging",
    "visualization",
    "workflows",
)
