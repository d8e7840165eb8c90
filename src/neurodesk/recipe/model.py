"""The ``build.yaml`` data model (top level), validated with pydantic.

Directive bodies are checked by :mod:`neurodesk.recipe.directives` (they need the key path of
each directive for their error lines); their Jinja strings are rendered at render time, when the
context (arch, options, local variables) is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.recipe.spdx import check_license_expression

Arch = Literal["x86_64", "aarch64"]

# Names and versions become image names `<name>_<version>:<date>`; upstream forbids `_` in both.
NAME_PATTERN = r"^[a-z0-9][a-z0-9.+-]*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+~-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Copyright(_Strict):
    """Either an SPDX licence (``license`` + ``url``) or a named custom licence (``name``)."""

    license: str | None = None
    name: str | None = None
    url: str | None = None

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        if value is not None:
            check_license_expression(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> Copyright:
        if self.license is None and self.name is None:
            raise ValueError("give 'license' (an SPDX id) or 'name' (a custom licence)")
        return self


class Deploy(_Strict):
    path: list[str] = Field(default_factory=list)
    bins: list[str] = Field(default_factory=list)


class Build(_Strict):
    kind: Literal["neurodocker"] = "neurodocker"
    base_image: str = Field(alias="base-image", min_length=1)
    pkg_manager: Literal["apt", "yum"] = Field(alias="pkg-manager")
    directives: list[dict[str, Any]] = Field(default_factory=list)
    # neurodocker's `_default` template (locales, /neurodocker/startup.sh) is not rendered.
    add_default_template: Literal[False] = Field(default=False, alias="add-default-template")
    add_tzdata: bool = Field(default=False, alias="add-tzdata")
    fix_locale_def: bool = Field(default=False, alias="fix-locale-def")


class GuiApp(_Strict):
    """A desktop menu entry: ``<name>-<recipe> <version>`` running ``exec``."""

    name: str = Field(min_length=1)
    exec: str = Field(min_length=1)


class Option(_Strict):
    """A named boolean switch; when on, ``version_suffix`` is appended to the version."""

    default: bool = False
    description: str = ""
    version_suffix: str = Field(default="", pattern=r"^[A-Za-z0-9.+~-]*$")


class FileSpec(_Strict):
    """A file made available to the build; ``get_file(name)`` gives its path in the image."""

    name: str = Field(min_length=1)
    contents: str | None = None
    filename: str | None = None
    url: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    executable: bool = False
    insecure: bool = False
    retry: int = Field(default=1, ge=1, le=20)
    curl_options: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> FileSpec:
        given = [k for k in ("contents", "filename", "url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a file has exactly one of 'contents', 'filename' or 'url'"
                f" (found {given or 'none'})"
            )
        return self


class StructuredReadme(_Strict):
    description: str = ""
    example: str = ""
    documentation: str = ""
    citation: str = ""


class Recipe(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    base_version: str = Field(alias="version", pattern=VERSION_PATTERN)
    architectures: list[Arch] = Field(default_factory=lambda: list[Arch](["x86_64"]), min_length=1)
    copyright: list[Copyright] = Field(default_factory=list)
    build: Build
    deploy: Deploy = Field(default_factory=Deploy)
    readme: str = ""
    readme_url: str | None = None
    structured_readme: StructuredReadme | None = None
    categories: list[str] = Field(default_factory=list)
    gui_apps: list[GuiApp] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    options: dict[str, Option] = Field(default_factory=dict)
    draft: bool = False
    epoch: int | None = None
    icon: str | None = None
    apptainer_args: list[str] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)
    _selected: dict[str, bool] = PrivateAttr(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; choose from: {', '.join(CATEGORIES)}")
        return value

    @field_validator("variables", "options")
    @classmethod
    def _identifier_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not (isinstance(k, str) and k.isidentifier())]
        if bad:
            raise ValueError(f"names must be identifiers usable in Jinja, not {bad}")
        return value

    @field_validator("files")
    @classmethod
    def _unique_files(cls, value: list[FileSpec]) -> list[FileSpec]:
        names = [f.name for f in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"file names must be unique: {dupes}")
        return value

    # -- options and the effective version ------------------------------------------------

    @property
    def option_values(self) -> dict[str, bool]:
        """Each option's value: its default unless chosen with :meth:`with_options`."""
        return {k: self._selected.get(k, opt.default) for k, opt in self.options.items()}

    def with_options(self, chosen: dict[str, bool]) -> Recipe:
        """A copy with options switched on/off; unknown names are an error."""
        from neurodesk.errors import ValidationError

        unknown = sorted(set(chosen) - set(self.options))
        if unknown:
            line = f"{self.source or 'recipe'}: options: unknown option(s) {unknown}"
            raise ValidationError(line, [line], hint=f"known: {sorted(self.options) or 'none'}")
        copy = self.model_copy()
        copy._source = self._source
        copy._selected = {**self._selected, **chosen}
        return copy

    @property
    def version(self) -> str:
        """The version with the ``version_suffix`` of every option that is on."""
        suffix = "".join(
            self.options[k].version_suffix for k, on in self.option_values.items() if on
        )
        return self.base_version + suffix

    @property
    def tag_name(self) -> str:
        """The image repository name, ``<name>_<version>``."""
        return f"{self.name}_{self.version}"

    @property
    def source(self) -> Path | None:
        """The ``build.yaml`` this recipe was loaded from (None when built in memory)."""
        return self._source

    @property
    def source_dir(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()
