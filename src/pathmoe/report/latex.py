"""LaTeX helpers: escaping, number formatting, and the jinja2 environment for the templates.

Templates use <<var>> / <% block %> delimiters because LaTeX is full of braces that would clash
with jinja2's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import jinja2

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MISSING = "--"


def escape(text: object) -> str:
    """Escape LaTeX special characters in user-provided text (labels, category names)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def fmt(value: float | None, digits: int = 2, bold: bool = False, ci: float | None = None) -> str:
    """A table number: fixed digits, optional ±CI as a subscript, bold for the column's best."""
    if value is None:
        return MISSING
    s = f"{value:.{digits}f}"
    if bold:
        s = rf"\textbf{{{s}}}"
    if ci is not None:
        s += rf"$_{{\pm{ci:.{digits}f}}}$"
    return s


def fmt_delta(delta: float | None, digits: int = 2) -> str:
    if delta is None:
        return MISSING
    return f"{delta:+,.0f}" if abs(delta) >= 1e4 else f"{delta:+.{digits}f}"


def fmt_auto(value: float | None, digits: int = 2) -> str:
    """Counts (>= 10^4, e.g. unique paths) with thousands separators, everything else fixed digits."""
    if value is None:
        return MISSING
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.{digits}f}"


@dataclass
class Tabular:
    """What table.tex.j2 renders: header rows, and body items (a group label or a row of cells)."""

    name: str
    caption: str
    colspec: str
    header: list[list[str]]
    body: list[dict] = field(default_factory=list)
    wide: bool = False

    def add_group(self, label: str) -> None:
        self.body.append({"rule": False, "group": escape(label), "cells": []})

    def add_rule(self) -> None:
        self.body.append({"rule": True, "group": None, "cells": []})

    def add_row(self, cells: list[str]) -> None:
        self.body.append({"rule": False, "group": None, "cells": cells})

    def render(self) -> str:
        ncols = len(self.header[0])
        return _env().get_template("table.tex.j2").render(
            name=self.name, caption=self.caption, colspec=self.colspec, header=self.header,
            body=self.body, ncols=ncols, wide=self.wide) + "\n"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda n: resources.files("pathmoe.report").joinpath("templates", n).read_text()),
        block_start_string="<%", block_end_string="%>", variable_start_string="<<", variable_end_string=">>",
        comment_start_string="<#", comment_end_string="#>", trim_blocks=True, lstrip_blocks=True,
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_template(name: str, **kwargs: object) -> str:
    return _env().get_template(name).render(**kwargs)
