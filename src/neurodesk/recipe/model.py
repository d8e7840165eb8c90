"""The ``build.yaml`` data model (top level), validated with pydantic.

Directive bodies are checked by :mod:`neurodesk.recipe.directives` (they need the key path of
each directive for their error lines); their Jinja strings are rendered at render time, when the
context (arch, options, local variables) is known.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from neurodesk.catalog.categories import CATEGORIES
from neurodesk.recipe.spdx import check_license
from neurodesk.recipe.tests import RecipeTest
from neurodesk.recipe.wording import did_you_mean

Arch = Literal["x86_64", "aarch64"]

# Names and versions become image names `<name>_<version>:<date>`; upstream forbids `_` in both.
NAME_PATTERN = r"^[a-z0-9][a-z0-9.+-]*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+~-]*$"


# Categories a recipe may name: the catalog's menu folders, the ones upstream's builder added
# since ("fetal imaging"), and the older names its builder still accepts (it validates recipes
# with the legacy list; only its metadata linter insists on the current one).
RECIPE_CATEGORIES: tuple[str, ...] = (
    *CATEGORIES,
    "fetal imaging",
)
LEGACY_CATEGORIES: tuple[str, ...] = (
    "connectomics",
    "conversion",
    "data management",
    "file conversion",
    "microscopy",
    "modeling",
    "motion correction",
    "other",
    "preprocessing",
    "simulation",
    "statistical analysis",
    "tractography",
)
AUTO_UPDATE_METHODS = ("github_release",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # What each pattern allows, in words (used by wording.describe).
    pattern_words: ClassVar[dict[str, str]] = {
        NAME_PATTERN: "lowercase letters, digits, '.', '+' and '-' ('_' separates name and"
        " version in image names)",
        VERSION_PATTERN: "letters, digits, '.', '+', '~' and '-' ('_' separates name and"
        " version in image names)",
        r"^[A-Za-z0-9.+~-]*$": "letters, digits, '.', '+', '~' and '-'",
        r"^[0-9a-f]{64}$": "64 lowercase hex digits (a sha256)",
        r"\.svg$": "an .svg file name",
        r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$": "OWNER/REPOSITORY",
    }


class Copyright(_Strict):
    """Either an SPDX licence (``license`` + ``url``) or a named custom licence (``name``)."""

    license: str | None = None
    name: str | None = None
    url: str | None = None

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        if value is not None:
            check_license(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> Copyright:
        if self.license is None and self.name is None:
            raise ValueError("give 'license' (an SPDX id) or 'name' (a custom licence)")
        return self


class AdditionalProxy(_Strict):
    path: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class Webapp(_Strict):
    """A web application served from the image (a JupyterLab launcher entry upstream)."""

    title: str = Field(min_length=1)
    startup_command: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    start_page: str | None = None
    module: str | None = None
    description: str | None = None
    startup_timeout: int | None = Field(default=None, ge=1)
    category: str | None = None
    icon: str | None = Field(default=None, pattern=r"\.svg$")
    additional_proxies: list[AdditionalProxy] | None = None


class Deploy(_Strict):
    path: list[str] = Field(default_factory=list)
    bins: list[str] = Field(default_factory=list)
    webapp: Webapp | None = None

    @field_validator("path", "bins", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Build(_Strict):
    kind: Literal["neurodocker"] = "neurodocker"
    base_image: str = Field(alias="base-image", min_length=1)
    pkg_manager: Literal["apt", "yum"] = Field(alias="pkg-manager")
    directives: list[dict[str, Any]] = Field(default_factory=list)
    # Upstream's builder adds its default template (locales, curl, /neurodocker/startup.sh as
    # the entrypoint) unless told not to, and tzdata when the default template is on.
    add_default_template: bool = Field(default=True, alias="add-default-template")
    add_tzdata: bool | None = Field(default=None, alias="add-tzdata")
    fix_locale_def: bool = Field(default=False, alias="fix-locale-def")

    @property
    def tzdata(self) -> bool:
        """Whether tzdata is installed: ``add-tzdata``, else the default template's setting."""
        return self.add_default_template if self.add_tzdata is None else self.add_tzdata


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
    refresh: bool = False
    condition: str | None = None
    curl_options: str = ""

    @field_validator("executable", "insecure", "refresh", mode="before")
    @classmethod
    def _null_false(cls, value: Any) -> Any:
        return False if value is None else value

    @field_validator("retry", mode="before")
    @classmethod
    def _null_retry(cls, value: Any) -> Any:
        return 1 if value is None else value

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

    @field_validator("*", mode="before")
    @classmethod
    def _null_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class AutoUpdate(_Strict):
    """Where a bot looks for new upstream versions (only GitHub releases upstream)."""

    method: Literal["github_release"]
    repo: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class Variant(_Strict):
    """An alternative build of the recipe (``<name>_<variant>``, e.g. ``fsl_gpu``)."""

    architecture: Arch | None = None
    architectures: list[Arch] | None = Field(default=None, min_length=1)
    description: str | None = None
    options: dict[str, bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_arch_key(self) -> Variant:
        if self.architecture is not None and self.architectures is not None:
            raise ValueError("give 'architecture' or 'architectures', not both")
        return self

    def arches(self, default: str) -> list[str]:
        if self.architectures:
            return list(self.architectures)
        return [self.architecture] if self.architecture else [default]


class Recipe(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    base_version: str = Field(alias="version", pattern=VERSION_PATTERN)
    description: str | None = None
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
    auto_update: AutoUpdate | None = None
    show_in_menu: bool | None = None
    show_in_applist: bool | None = None
    tests: list[RecipeTest] = Field(default_factory=list)
    variants: dict[str, Variant] = Field(default_factory=dict)

    _source: Path | None = PrivateAttr(default=None)
    _selected: dict[str, bool] = PrivateAttr(default_factory=dict)
    # The concrete build chosen with with_variant(): '' (default x86_64), 'arm64', 'gpu', ...
    _variant: str = PrivateAttr(default="")

    @field_validator("base_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads `version: 2` as a number; upstream's builder takes str() of it.
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    @field_validator("readme_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "{{")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        known = (*RECIPE_CATEGORIES, *LEGACY_CATEGORIES)
        for category in value:
            if category not in known:
                hint = did_you_mean(category, known) or "; see docs/recipe-format.md"
                raise ValueError(f"unknown category '{category}'{hint}")
        return value

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        for name in value:
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
                raise ValueError(
                    f"variant name '{name}': use lowercase letters, digits, '_' and '-'"
                )
            if name == "arm64" or name.endswith("_arm64"):
                raise ValueError(
                    f"variant name '{name}' clashes with the automatic '_arm64' suffix"
                )
        return value

    @model_validator(mode="after")
    def _variants_fit(self) -> Recipe:
        for name, variant in self.variants.items():
            for arch in variant.arches(self.architectures[0]):
                if arch not in self.architectures:
                    raise ValueError(
                        f"variants.{name}: architecture '{arch}' is not in architectures"
                    )
            for option in variant.options:
                if option not in self.options:
                    raise ValueError(
                        f"variants.{name}.options: unknown option '{option}'"
                        + did_you_mean(option, self.options)
                    )
        return self

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
            lines = [
                f"{self.source or 'recipe'}: options: unknown option '{name}'"
                + did_you_mean(name, self.options)
                for name in unknown
            ]
            raise ValidationError(
                lines[0], lines, hint=f"known: {', '.join(sorted(self.options)) or 'none'}"
            )
        copy = self.model_copy()
        copy._source = self._source
        copy._selected = {**self._selected, **chosen}
        copy._variant = self._variant
        return copy

    def with_variant(self, selector: str, options: dict[str, bool]) -> Recipe:
        """A copy for one concrete build (see recipe.variants): its options and its name."""
        copy = self.with_options(options) if options else self.with_options({})
        copy._variant = selector
        return copy

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def image_name(self) -> str:
        """The published name: ``<name>`` or, for a variant, ``<name>_<variant>``."""
        return f"{self.name}_{self._variant}" if self._variant else self.name

    @property
    def version(self) -> str:
        """The version with the ``version_suffix`` of every option that is on."""
        suffix = "".join(
            self.options[k].version_suffix for k, on in self.option_values.items() if on
        )
        return self.base_version + suffix

    @property
    def tag_name(self) -> str:
        """The image repository name, ``<image name>_<version>``."""
        return f"{self.image_name}_{self.version}"

    @property
    def source(self) -> Path | None:
        """The ``build.yaml`` this recipe was loaded from (None when built in memory)."""
        return self._source

    @property
    def source_dir(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()
