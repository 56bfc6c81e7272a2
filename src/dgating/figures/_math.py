r"""Typeset maths for the HTML report, offline: LaTeX to inline SVG with matplotlib's mathtext.

Every formula becomes ``<span class="math" role="img" aria-label="LATEX"><svg ...></svg></span>``,
sized in ``em`` so that it scales with the surrounding text and aligned on the text baseline. The
glyph outlines are defined once per report (:meth:`MathRenderer.defs`, a hidden ``<svg>`` at the top
of the page) and referenced by every formula, which keeps the report small. A formula mathtext
cannot parse falls back to plain text in ``<span class="math math-text">`` (the report never
fails because of a formula).

Examples
--------
>>> r = MathRenderer()
>>> html = r.inline(r"\frac{4\lambda}{D}")
>>> html.startswith('<span class="math"') and "<svg" in html and "<path id=" not in html
True
>>> "<path id=" in r.defs()
True
>>> sympy_latex("(-eta*lam + 1)**2")
'\\left(1 - \\eta \\lambda\\right)^{2}'
"""

from __future__ import annotations

import html
import io
import re
import warnings

__all__ = ["MathRenderer", "sympy_latex"]

#: Font size (pt) at which formulas are rendered; sizes are then expressed in em of this size.
_PT = 12.0

#: LaTeX that mathtext does not know, rewritten to what it does (size commands are dropped).
_REWRITES = (
    (re.compile(r"\\(?:tfrac|dfrac)(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\le(?![a-zA-Z])"), r"\\leq"),
    (re.compile(r"\\ge(?![a-zA-Z])"), r"\\geq"),
    (re.compile(r"\\(?:[Bb]ig{1,2}[lr]?|textstyle|displaystyle)(?![a-zA-Z])"), ""),
    (re.compile(r"\\operatorname\{"), r"\\mathrm{"),
    (re.compile(r"\\text\{"), r"\\mathrm{"),
)

#: Names of sympy symbols as the report writes them (``g``: the limit gradient norm of a group).
SYMBOL_NAMES = {
    "lam": r"\lambda",
    "g": r"\|g_j^\star\|",
    "Delta_0": r"\Delta_{j,d}(0)",
    "eta": r"\eta",
    "r": r"r",
}


def sympy_latex(expr: str) -> str:
    r"""LaTeX of a sympy expression given as a string, with the report's symbol names.

    Examples
    --------
    >>> sympy_latex("2*g + 2*lam")
    '2 \\lambda + 2 \\|g_j^\\star\\|'
    >>> sympy_latex("r**(2/3)")
    'r^{\\frac{2}{3}}'
    """
    import sympy as sp

    parsed = sp.sympify(expr)
    names = {s: SYMBOL_NAMES[s.name] for s in parsed.free_symbols if s.name in SYMBOL_NAMES}
    return sp.latex(parsed, symbol_names=names, order="rev-lex")


def _clean_latex(tex: str) -> str:
    for pattern, repl in _REWRITES:
        tex = pattern.sub(repl, tex)
    return tex.strip()


#: A glyph outline in the ``<defs>`` of mathtext's SVG (group 1: the element, group 2: its id).
_GLYPH = re.compile(r'(<path id="([^"]+)"[^>]*/>)', re.S)


class MathRenderer:
    """Render formulas to inline SVG, sharing glyph outlines across one report."""

    def __init__(self) -> None:
        self._glyphs: dict[str, str] = {}
        self._cache: dict[str, str] = {}

    def inline(self, tex: str) -> str:
        """``<span class="math">`` holding the typeset ``tex`` (without dollar signs)."""
        tex = tex.strip()
        if tex not in self._cache:
            self._cache[tex] = self._render(tex)
        return self._cache[tex]

    def _render(self, tex: str) -> str:
        label = html.escape(tex, quote=True)
        clean = _clean_latex(tex)
        if not re.sub(r"\\[,;: ]|\\q?quad|\s", "", clean):
            return " "  # only spacing: nothing to draw
        try:
            svg, depth = self._mathtext_svg(clean)
        except Exception:  # mathtext's parser errors have no common type; fall back to text
            return f'<span class="math math-text">{_text_fallback(tex)}</span>'
        width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
        height = float(re.search(r'height="([\d.]+)pt"', svg).group(1))
        for path, gid in _GLYPH.findall(svg):
            self._glyphs.setdefault(gid, re.sub(r"\s+", " ", path))
        body = re.sub(r"<defs>.*?</defs>", "", svg, flags=re.S)
        body = re.sub(r"^.*?<svg\b[^>]*>", "", body, flags=re.S)
        body = re.sub(r'<g id="patch_1">.*?</g>', "", body, flags=re.S)
        body = re.sub(r"<!--.*?-->|<metadata>.*?</metadata>", "", body, flags=re.S)
        body = re.sub(r'\s(?:id|clip-path)="[^"]*"', "", body)
        # Inline SVG in HTML needs no namespaces; SVG 2 ``href`` replaces ``xlink:href``.
        body = body.replace("</svg>", "").replace("xlink:href=", "href=")
        body = re.sub(r"\s+", " ", body).strip()
        style = (
            f"width:{width / _PT:.3f}em;height:{height / _PT:.3f}em;"
            f"vertical-align:{-depth / _PT:.3f}em"
        )
        return (
            f'<span class="math" role="img" aria-label="{label}">'
            f'<svg viewBox="0 0 {width:g} {height:g}" style="{style}">{body}</svg></span>'
        )

    @staticmethod
    def _mathtext_svg(tex: str) -> tuple[str, float]:
        from matplotlib import mathtext, rc_context
        from matplotlib.font_manager import FontProperties

        buf = io.BytesIO()
        with rc_context({"svg.fonttype": "path", "mathtext.fontset": "cm"}):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                depth = mathtext.math_to_image(
                    f"${tex}$", buf, format="svg", prop=FontProperties(size=_PT)
                )
        return buf.getvalue().decode("utf-8"), float(depth)

    def roles(self, text: str) -> str:
        """Escape ``text`` (reST prose) and typeset its ``:math:`...``` roles.

        Examples
        --------
        >>> out = MathRenderer().roles(r"rate :math:`4\\lambda/D` and ``code`` <b>")
        >>> out.startswith("rate <span") and out.endswith("<code>code</code> &lt;b&gt;")
        True
        """
        parts = re.split(r":math:`([^`]*)`", text)
        out = []
        for i, part in enumerate(parts):
            if i % 2:
                out.append(self.inline(part))
            else:
                part = html.escape(part, quote=False)
                part = re.sub(r":\w+:`~?([^`]*)`", r"<code>\1</code>", part)
                out.append(re.sub(r"``([^`]*)``", r"<code>\1</code>", part))
        return "".join(out)

    def defs(self) -> str:
        """The hidden ``<svg>`` with every glyph used so far; place it once, before the formulas
        are displayed (browsers resolve the references document-wide)."""
        paths = "".join(self._glyphs.values())
        return (
            '<svg aria-hidden="true" '
            f'style="position:absolute;width:0;height:0;overflow:hidden"><defs>{paths}</defs></svg>'
        )


def _text_fallback(tex: str) -> str:
    """Readable text for a formula mathtext cannot parse (Greek letters, no backslashes)."""
    from ._report import texify

    return texify(f":math:`{tex}`").removeprefix("<i>").removesuffix("</i>")
