"""SPDX licence expressions for ``copyright[].license``.

We embed the SPDX ids that scientific software actually uses (a few hundred bytes, no
dependency, no network) rather than the whole 600-entry list: an id missing here can still be
written as ``LicenseRef-<name>`` (the SPDX way to name any other licence), or the entry can use
``name:`` instead of ``license:``. Expressions follow SPDX: ids joined by ``AND``/``OR``,
``WITH <exception>``, parentheses, and a trailing ``+`` ("or later").
"""

from __future__ import annotations

import difflib
import re

_LICENSE_TEXT = """
    0BSD AFL-3.0 AGPL-1.0-only AGPL-1.0-or-later AGPL-3.0 AGPL-3.0-only AGPL-3.0-or-later
    Apache-1.0 Apache-1.1 Apache-2.0 APSL-2.0 Artistic-1.0 Artistic-1.0-Perl Artistic-2.0
    Beerware BlueOak-1.0.0 BSD-1-Clause BSD-2-Clause BSD-2-Clause-Patent BSD-3-Clause
    BSD-3-Clause-Clear BSD-3-Clause-LBNL BSD-3-Clause-No-Nuclear-License BSD-4-Clause
    BSD-Source-Code BSL-1.0 bzip2-1.0.6 CAL-1.0 CC-BY-1.0 CC-BY-2.0 CC-BY-2.5 CC-BY-3.0
    CC-BY-4.0 CC-BY-NC-2.0 CC-BY-NC-3.0 CC-BY-NC-4.0 CC-BY-NC-ND-3.0 CC-BY-NC-ND-4.0
    CC-BY-NC-SA-2.0 CC-BY-NC-SA-3.0 CC-BY-NC-SA-4.0 CC-BY-ND-4.0 CC-BY-SA-3.0 CC-BY-SA-4.0
    CC0-1.0 CDDL-1.0 CDDL-1.1 CECILL-2.0 CECILL-2.1 CECILL-B CECILL-C ClArtistic CNRI-Python
    CPL-1.0 curl ECL-2.0 EFL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 FSFAP FSFUL FTL GFDL-1.3
    GFDL-1.3-only GFDL-1.3-or-later GPL-1.0-only GPL-1.0-or-later GPL-2.0 GPL-2.0-only
    GPL-2.0-or-later GPL-3.0 GPL-3.0-only GPL-3.0-or-later HPND ICU IJG Imlib2 Info-ZIP IPA
    ISC JasPer-2.0 JSON LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1 LGPL-2.1-only
    LGPL-2.1-or-later LGPL-3.0 LGPL-3.0-only LGPL-3.0-or-later libpng-2.0 libtiff LPL-1.02
    LPPL-1.3c MIT MIT-0 MIT-CMU MIT-Modern-Variant MPL-1.0 MPL-1.1 MPL-2.0
    MPL-2.0-no-copyleft-exception MS-PL MS-RL MulanPSL-2.0 NCSA Net-SNMP NLPL NTP OFL-1.1
    OGL-UK-3.0 OLDAP-2.8 OpenSSL OSL-1.0 OSL-2.0 OSL-2.1 OSL-3.0 PHP-3.0 PHP-3.01 PostgreSQL
    PolyForm-Noncommercial-1.0.0 PolyForm-Small-Business-1.0.0
    PSF-2.0 Python-2.0 Python-2.0.1 Qhull QPL-1.0 Ruby SGI-B-2.0 Sleepycat SMLNJ SSPL-1.0
    TCL Unicode-DFS-2016 Unicode-3.0 Unlicense UPL-1.0 Vim W3C WTFPL X11 XFree86-1.1 Zed
    Zlib zlib-acknowledgement ZPL-2.0 ZPL-2.1
"""

_EXCEPTION_TEXT = """
    Autoconf-exception-3.0 Bison-exception-2.2 Classpath-exception-2.0 GCC-exception-3.1
    LLVM-exception OCaml-LGPL-linking-exception Qt-LGPL-exception-1.1 Font-exception-2.0
"""

LICENSES: frozenset[str] = frozenset(_LICENSE_TEXT.split())
EXCEPTIONS: frozenset[str] = frozenset(_EXCEPTION_TEXT.split())

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+-]+)")
_REF = re.compile(r"^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")
_LOWER = {lic.lower(): lic for lic in LICENSES}


def _tokens(expression: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unexpected character {text[pos]!r} in licence expression")
        out.append(match.group(1))
        pos = match.end()
    return out


def _check_id(token: str) -> None:
    if _REF.match(token):
        return
    base = token[:-1] if token.endswith("+") else token
    if base in LICENSES:
        return
    near = _LOWER.get(base.lower())
    if near is None:
        close = difflib.get_close_matches(base, sorted(LICENSES), n=1, cutoff=0.85)
        near = close[0] if close else None
    if near is not None:
        raise NearMiss(f"'{token}' is not an SPDX licence id; did you mean '{near}'?")
    raise ValueError(f"'{token}' is not a known SPDX licence id (or write LicenseRef-<name>)")


SPECIAL = ("NOASSERTION", "NONE")


class NearMiss(ValueError):
    """A licence id that is almost a known one (wrong case, a typo): surely a mistake."""


def check_license(text: str) -> None:
    """Check ``copyright[].license`` as upstream's builder reads it.

    The builder takes any non-empty text (``FreeSurfer``, ``custom``), so only mistakes we can
    name are refused: an empty value, and an id that is nearly a known SPDX id (``mit``,
    ``Apache-2``). A well-formed SPDX expression, ``NOASSERTION``/``NONE``, ``LicenseRef-*``
    and other licence names are accepted.
    """
    if not text.strip():
        raise ValueError("empty licence; give an SPDX id, NOASSERTION, or use 'name:'")
    if text.strip() in SPECIAL:
        return
    try:
        check_license_expression(text)
    except NearMiss:
        raise
    except ValueError:
        return  # a licence name that is not SPDX: accepted, as upstream does


def check_license_expression(expression: str) -> None:
    """Raise ValueError naming the first problem in an SPDX licence expression."""
    if expression.strip() in SPECIAL:
        return
    tokens = _tokens(expression)
    if not tokens:
        raise ValueError("empty licence expression")
    position = _expression(tokens, 0)
    if position != len(tokens):
        raise ValueError(f"unexpected '{tokens[position]}' in licence expression")


def _expression(tokens: list[str], pos: int) -> int:
    pos = _term(tokens, pos)
    while pos < len(tokens) and tokens[pos] in ("AND", "OR"):
        pos = _term(tokens, pos + 1)
    return pos


def _term(tokens: list[str], pos: int) -> int:
    if pos >= len(tokens):
        raise ValueError("licence expression ends too early")
    token = tokens[pos]
    if token == "(":
        pos = _expression(tokens, pos + 1)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ValueError("missing ')' in licence expression")
        return pos + 1
    if token in ("AND", "OR", "WITH", ")"):
        raise ValueError(f"unexpected '{token}' in licence expression")
    _check_id(token)
    pos += 1
    if pos < len(tokens) and tokens[pos] == "WITH":
        if pos + 1 >= len(tokens) or tokens[pos + 1] not in EXCEPTIONS:
            got = tokens[pos + 1] if pos + 1 < len(tokens) else "nothing"
            raise ValueError(f"'{got}' is not a known SPDX licence exception")
        pos += 2
    return pos
