"""The concrete images one recipe stands for: every architecture, and every declared variant.

Upstream names them by suffixing the recipe name: ``fsl`` (the default build on x86_64),
``fsl_arm64`` (the default build on aarch64), ``fsl_gpu`` (a variant) and ``fsl_gpu_arm64``.
A variant switches options on or off and may restrict its architectures; when it names none it
is built for the recipe's first (preferred) architecture. The same rule is used by ``recipe
check`` (render each one), ``build --variant`` and the release files.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurodesk.recipe.model import Recipe

ARM_SUFFIX = "arm64"


@dataclass(frozen=True)
class Concrete:
    """One image of a recipe: ``selector`` is '' for the default x86_64 build."""

    selector: str
    variant: str
    arch: str
    options: tuple[tuple[str, bool], ...] = ()

    @property
    def label(self) -> str:
        return self.selector or "default"


def _selector(variant: str, arch: str) -> str:
    suffix = ARM_SUFFIX if arch == "aarch64" else ""
    if variant and suffix:
        return f"{variant}_{suffix}"
    return variant or suffix


def preferred_arch(recipe: Recipe) -> str:
    return "x86_64" if "x86_64" in recipe.architectures else recipe.architectures[0]


def concrete_builds(recipe: Recipe) -> list[Concrete]:
    """Every image of ``recipe``: the default build per architecture, then each variant."""
    first = preferred_arch(recipe)
    arches = [first, *[a for a in recipe.architectures if a != first]]
    out = [Concrete(_selector("", a), "", a) for a in arches]
    for name, variant in recipe.variants.items():
        options = tuple(sorted(variant.options.items()))
        out += [Concrete(_selector(name, a), name, a, options) for a in variant.arches(first)]
    return out


def select(recipe: Recipe, variant: str | None, arch: str | None) -> Concrete:
    """The build asked for with ``--variant``/``--arch`` (a ValueError names the choices)."""
    builds = concrete_builds(recipe)
    wanted_variant = variant or ""
    if wanted_variant.endswith("_" + ARM_SUFFIX) or wanted_variant == ARM_SUFFIX:
        found = [b for b in builds if b.selector == wanted_variant]
    else:
        found = [b for b in builds if b.variant == wanted_variant]
        if arch is not None:
            found = [b for b in found if b.arch == arch]
        elif found:
            found = [b for b in found if b.arch == found[0].arch]
    if arch is not None:
        found = [b for b in found if b.arch == arch]
    if not found:
        known = ", ".join(b.label for b in builds)
        raise ValueError(
            f"no build '{variant or 'default'}'"
            + (f" for {arch}" if arch else "")
            + f" in {recipe.name}; it has: {known}"
        )
    return found[0]
