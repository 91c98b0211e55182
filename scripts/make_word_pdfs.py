"""Regenerate the Word-style policy PDFs in tests/fixtures/word_pdfs/ (issue 12).

    python scripts/make_word_pdfs.py   # needs python-docx and LibreOffice (apt libreoffice-writer)

Each document is written as DOCX with python-docx the way an HR team writes one in Word: a running
header, a "Version 1.0 Page N of M" footer (PAGE and NUMPAGES fields), numbered clauses that wrap
over several lines (typed "4.2" numbers with a hanging indent, and Word's own "List Number"),
clauses that run across page breaks, and a table. LibreOffice headless renders it to PDF. Beside
each PDF, ``<name>.txt`` holds the ground truth the way the corpus writes it: one block per
paragraph, blocks separated by a blank line, table cells joined by TABs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from docx import Document
from docx.enum.text import WD_TAB_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "word_pdfs"

# Deterministic filler that reads like policy text; each clause wraps over three to six lines.
_PHRASES = (
    "within seven working days of the receipt of the decision letter",
    "the employee may be accompanied by a colleague or a trade union representative",
    "the manager will confirm the outcome in writing and keep a copy on the personnel file",
    "where the matter concerns the line manager it is referred to the next level of management",
    "any request for an extension must be made in writing before the period ends",
    "the People team will arrange a meeting at a time and place convenient to both parties",
    "records of the hearing are kept confidential and retained for six years",
    "the decision of the appeal panel is final and ends the internal procedure",
)


def _clause(n: int, length: int) -> str:
    parts = [_PHRASES[(n + i) % len(_PHRASES)] for i in range(length)]
    return "; ".join(parts).capitalize() + "."


def _field(paragraph: object, instruction: str) -> None:
    run = paragraph.add_run()  # type: ignore[attr-defined]
    for kind, text in (("begin", None), (None, instruction), ("separate", None), ("end", None)):
        if kind:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), kind)
        else:
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = f" {text} "
        run._r.append(element)
        if kind == "separate":
            run._r.append(_text("1"))


def _text(value: str) -> OxmlElement:
    element = OxmlElement("w:t")
    element.text = value
    return element


def policy(
    title: str, organisation: str, sections: int, header_cm: float
) -> tuple[Document, list[str]]:
    """A policy document and its ground-truth blocks; the header sits ``header_cm`` from the top
    (Word's default is 1.25 cm; a deeper one brings it close to the body text)."""
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Liberation Serif"
    style.font.size = Pt(11)
    section = doc.sections[0]
    section.header_distance = Cm(header_cm)
    section.top_margin = Cm(max(2.54, header_cm + 1.5))
    section.header.paragraphs[0].text = f"{organisation} \u2013 {title}"
    if header_cm > 1.5:  # a two-line header, as many templates have
        section.header.add_paragraph("Controlled document: uncontrolled when printed")
    footer = section.footer.paragraphs[0]
    footer.paragraph_format.tab_stops.add_tab_stop(Cm(16), WD_TAB_ALIGNMENT.RIGHT)
    footer.add_run("Version 1.0\tPage ")
    _field(footer, "PAGE")
    footer.add_run(" of ")
    _field(footer, "NUMPAGES")
    truth: list[str] = []
    doc.add_heading(title, level=1)
    truth.append(title)
    intro = (
        f"This policy sets out how {organisation} handles the matters below. "
        + _clause(0, 4)
        + " It applies to every employee, whatever their contract or place of work."
    )
    doc.add_paragraph(intro)
    truth.append(intro)
    for s in range(1, sections + 1):
        heading = f"{s}. Section {s}: procedure and timing"
        doc.add_heading(heading, level=2)
        truth.append(heading)
        for c in range(1, 5):
            text = _clause(s * 7 + c, 3 + (s + c) % 4)
            clause = doc.add_paragraph(f"{s}.{c}\t{text}")
            clause.paragraph_format.left_indent = Cm(1.25)
            clause.paragraph_format.first_line_indent = Cm(-1.25)
            truth.append(f"{s}.{c} {text}")
        for c in range(1, 3):
            text = _clause(s * 3 + c, 2 + c)
            doc.add_paragraph(text, style="List Number")
            truth.append(text)
        if s == 2:
            rows = [
                ("Stage", "Who hears it", "Time limit"),
                ("Informal", "Line manager", "5 working days"),
                ("Formal grievance", "Head of department", "10 working days"),
                ("Appeal", "Appeal panel", "7 working days after the decision letter"),
            ]
            table = doc.add_table(rows=len(rows), cols=3)
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
            truth.extend("\t".join(row) for row in rows)
            doc.add_paragraph()
    return doc, truth


DOCUMENTS = (
    ("grievance-policy", "Grievance and Appeals Policy", "Acme Widgets Ltd", 9, 1.25),
    ("disciplinary-procedure", "Disciplinary Procedure", "Northwind Care Trust", 7, 2.2),
)


def main() -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise SystemExit("LibreOffice is needed: apt-get install -y libreoffice-writer")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, title, organisation, sections, header_cm in DOCUMENTS:
            doc, truth = policy(title, organisation, sections, header_cm)
            docx_path = Path(tmp) / f"{name}.docx"
            doc.save(str(docx_path))
            subprocess.run(  # noqa: S603 - our own arguments, LibreOffice from PATH
                [soffice, "--headless", "--convert-to", "pdf", "--outdir", str(OUT), docx_path],
                check=True,
                capture_output=True,
                env={"HOME": tmp, "PATH": "/usr/bin:/bin"},
                timeout=180,
            )
            (OUT / f"{name}.txt").write_text("\n\n".join(truth) + "\n", encoding="utf-8")
            print(OUT / f"{name}.pdf")


if __name__ == "__main__":
    main()
