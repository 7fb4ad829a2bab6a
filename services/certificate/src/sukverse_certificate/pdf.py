"""The printable certificate: a one-page PDF with the text and a QR code to verify it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import segno
from fpdf import FPDF
from markdown_it import MarkdownIt

# The Markdown a template's text may use: emphasis (bold, italics) and line breaks; the rest
# (headings, lists, links, HTML) prints as written.
_MARKDOWN = MarkdownIt("zero").enable(["emphasis", "newline", "escape"])
_MARKDOWN_SPECIAL = re.compile(r"([\\*_])")
_FPDF_MARKERS = ("**", "__", "~~", "--")
_STYLE = {"strong_open": "**", "strong_close": "**", "em_open": "__", "em_close": "__"}


class _Page(FPDF):
    # fpdf2's markup would turn `[text](url)` into a link; a certificate's text has none.
    MARKDOWN_LINK_REGEX = re.compile(r"(?!)")


@dataclass(frozen=True)
class Printable:
    title: str
    body: str
    name: str
    workshop: str
    issued_on: str
    verify_url: str
    code: str


def _latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1; other characters print as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def markdown_literal(text: str) -> str:
    """Text (a name filled into a template) that the Markdown reads as written: `*`, `_`
    and `\\` escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _escaped(text: str) -> str:
    """Literal text for fpdf2's markup: its markers and escape character escaped."""
    text = text.replace("\\", "\\\\")
    for marker in _FPDF_MARKERS:
        text = text.replace(marker, "\\" + marker)
    return text


def body_markup(text: str) -> str:
    """A template's Markdown as fpdf2's markup: **bold** and *italics* (or __ and _) styled,
    each line break kept (as people type certificate texts), paragraphs a blank line apart,
    everything else literal."""
    paragraphs: list[str] = []
    for block in _MARKDOWN.parse(text):
        if block.type != "inline":
            continue
        parts: list[str] = []
        for token in block.children or []:
            if token.type in _STYLE:
                parts.append(_STYLE[token.type])
            elif token.type in ("softbreak", "hardbreak"):
                parts.append("\n")
            else:
                parts.append(_escaped(token.content))
        paragraphs.append("".join(parts))
    return "\n\n".join(paragraphs)


def render_pdf(doc: Printable) -> bytes:
    """A landscape A4 page: title, holder, text, date, and the verification QR code drawn
    as vector squares (it scales without blurring)."""
    pdf = _Page(orientation="landscape", format="A4")
    pdf.set_title(_latin1(doc.title))
    pdf.set_creator("Sukverse")
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    pdf.set_line_width(1.2)
    pdf.rect(10, 10, 277, 190)
    pdf.set_font("Helvetica", "B", 28)
    pdf.set_y(30)
    pdf.multi_cell(0, 14, _latin1(doc.title), align="C")
    pdf.set_font("Helvetica", "", 14)
    pdf.ln(4)
    pdf.cell(0, 8, "awarded to", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 24)
    pdf.cell(0, 14, _latin1(doc.name), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 13)
    pdf.ln(4)
    pdf.set_x(30)
    pdf.multi_cell(237, 7, _latin1(body_markup(doc.body)), align="C", markdown=True)
    pdf.set_font("Helvetica", "", 11)
    pdf.set_xy(20, 170)
    pdf.cell(150, 6, _latin1(f"Workshop: {doc.workshop}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.cell(150, 6, f"Issued on {doc.issued_on}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.cell(150, 6, _latin1(f"Verify: {doc.verify_url}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.cell(150, 6, f"Code: {doc.code}")
    _qr(pdf, doc.verify_url, x=237, y=150, size=40)
    return bytes(pdf.output())


def _qr(pdf: FPDF, data: str, *, x: float, y: float, size: float) -> None:
    qr = segno.make_qr(data, error="m")
    rows = list(qr.matrix_iter(scale=1, border=2))
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                pdf.rect(x + c * module, y + r * module, module, module, style="F")
