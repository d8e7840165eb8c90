"""The ``build.yaml`` data model, validated with pydantic.

Directive bodies are kept as plain data here; their Jinja strings are rendered at render time,
when the context (arch, options, ...) is known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from neurodesk.catalog.categories import CATEGORIES

Arch = Literal["x86_64", "aarch64"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Copyright(_Strict):
    license: str | None = None
    name: str | None = None
    url: str | None = None


class Deploy(_Strict):
    path: list[str] = Field(default_factory=list)
    bins: list[str] = Field(default_factory=list)


class Build(_Strict):
    kind: Literal["neurodocker"] = "neurodocker"
    base_image: str = Field(alias="base-image")
    pkg_manager: Literal["apt", "yum"] = Field(alias="pkg-manager")
    directives: list[dict[str, Any]] = Field(default_factory=list)


class GuiApp(_Strict):
    name: str
    exec: str


class Recipe(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.+-]*$")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+~-]*$")
    architectures: list[Arch] = Field(default_factory=lambda: list[Arch](["x86_64"]))
    copyright: list[Copyright] = Field(default_factory=list)
    build: Build
    deploy: Deploy = Field(default_factory=Deploy)
    readme: str = ""
    categories: list[str] = Field(default_factory=list)
    gui_apps: list[GuiApp] = Field(default_factory=list)
    draft: bool = False
    epoch: int | None = None

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; choose from: {', '.join(CATEGORIES)}")
        return value

    @property
    def tag_name(self) -> str:
        """The image repository name, ``<name>_<version>``."""
        return f"{self.name}_{self.version}"
