"""Word, HTML, Markdown and plain text extraction on small documents written by the tests."""

from __future__ import annotations

import io

import pytest

from datatorag_processor.extract import Block, ExtractedDocument, extract, plain_text

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pages": 100}


def _kinds(doc: ExtractedDocument) -> list[tuple[str, str]]:
    return [(b.kind, b.text) for b in doc.blocks]


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Leave policy"
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Everyone gets 25 days of paid leave a year.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Tell your manager on the first day.", style="List Bullet")
    document.add_paragraph("Send a doctor's note after three days.", style="List Number")
    table = document.add_table(rows=3, cols=2)
    for row, (kind, days) in zip(
        table.rows, [("Kind", "Days"), ("Annual", "25"), ("Parental", "120")], strict=True
    ):
        row.cells[0].text, row.cells[1].text = kind, days
    document.add_paragraph("Questions go to people-ops.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_blocks_headings_lists_and_table() -> None:
    doc = extract(_docx(), "policies/leave.docx", **LIMITS)
    assert doc.media_type.endswith("wordprocessingml.document")
    assert doc.title == "Leave policy" and doc.page_count is None
    assert _kinds(doc) == [
        ("heading", "Leave policy"),
        ("paragraph", "Everyone gets 25 days of paid leave a year."),
        ("heading", "Sick leave"),
        ("list_item", "Tell your manager on the first day."),
        ("list_item", "Send a doctor's note after three days."),
        ("table_row", "Kind\tDays"),
        ("table_row", "Annual\t25"),
        ("table_row", "Parental\t120"),
        ("paragraph", "Questions go to people-ops."),
    ]
    sick = doc.blocks[2]
    assert sick.level == 2 and sick.headings == ("Leave policy",)
    rows = [b for b in doc.blocks if b.kind == "table_row"]
    assert rows[0].header == () and rows[1].header == ("Kind", "Days")
    assert rows[2].cells == ("Parental", "120") and rows[2].headings == (
        "Leave policy",
        "Sick leave",
    )


HTML = """<!DOCTYPE html>
<html><head><title>Expenses</title><style>p { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body><nav><a href="/">Home</a> | <a href="/hr">HR</a></nav>
<main><h1>Expenses</h1>
<p>Keep <b>every</b> receipt.<br>Submit within 30 days.</p>
<ul><li>Travel<ul><li>Economy class only</li></ul></li><li>Meals up to $50</li></ul>
<table><thead><tr><th>Item</th><th>Limit</th></tr></thead>
<tbody><tr><td>Hotel</td><td>$200 a night</td></tr></tbody></table>
<pre>expense submit --receipt r.pdf</pre>
<div>Loose text in a div.</div>
<!-- a comment that is not text -->
</main></body></html>"""


def test_html_blocks_without_scripts_styles_or_navigation() -> None:
    doc = extract(HTML.encode(), "expenses.html", **LIMITS)
    assert doc.media_type == "text/html" and doc.title == "Expenses"
    assert _kinds(doc) == [
        ("heading", "Expenses"),
        ("paragraph", "Keep every receipt.\nSubmit within 30 days."),
        ("list_item", "Travel"),
        ("list_item", "Economy class only"),
        ("list_item", "Meals up to $50"),
        ("table_row", "Item\tLimit"),
        ("table_row", "Hotel\t$200 a night"),
        ("code", "expense submit --receipt r.pdf"),
        ("paragraph", "Loose text in a div."),
    ]
    assert doc.blocks[6].header == ("Item", "Limit")
    text = plain_text(doc)
    assert "tracking" not in text and "Home" not in text and "color" not in text


MARKDOWN = """---
title: Remote work
---
# Working remotely

You can work from **anywhere** in your [country](https://example.com/countries).

## Equipment

1. A laptop
2. A monitor,
   if you ask

| Item | Budget |
| --- | --- |
| Desk | $300 |

```
vpn connect
```
"""


def test_markdown_blocks_front_matter_and_tables() -> None:
    doc = extract(MARKDOWN.encode(), "remote.md", **LIMITS)
    assert doc.media_type == "text/markdown" and doc.title == "Remote work"
    assert _kinds(doc) == [
        ("heading", "Working remotely"),
        ("paragraph", "You can work from anywhere in your country."),
        ("heading", "Equipment"),
        ("list_item", "A laptop"),
        ("list_item", "A monitor, if you ask"),
        ("table_row", "Item\tBudget"),
        ("table_row", "Desk\t$300"),
        ("code", "vpn connect"),
    ]
    assert doc.blocks[2].level == 2 and doc.blocks[3].headings == ("Working remotely", "Equipment")


def test_plain_text_paragraphs_and_items() -> None:
    text = "Holidays\n\nThe office closes on:\n\n- 1 January\n- 25 December\n  and the day after\n"
    doc = extract(text.encode("utf-8"), "holidays.txt", **LIMITS)
    assert doc.media_type == "text/plain" and doc.title is None
    assert _kinds(doc) == [
        ("paragraph", "Holidays"),
        ("paragraph", "The office closes on:"),
        ("list_item", "1 January"),
        ("list_item", "25 December and the day after"),
    ]
    assert plain_text(doc) == (
        "Holidays\n\nThe office closes on:\n\n1 January\n\n25 December and the day after"
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "cp1252"])
def test_plain_text_encodings(encoding: str) -> None:
    doc = extract("Café allowance: 5 €".encode(encoding), "notes.txt", **LIMITS)
    assert plain_text(doc) == "Café allowance: 5 €"


def test_type_comes_from_content_not_name() -> None:
    # HTML named .txt is still read as HTML; Markdown without a Markdown name is detected.
    html = extract(b"<!doctype html><p>Hello <i>there</i></p>", "page.txt", **LIMITS)
    assert html.media_type == "text/html" and plain_text(html) == "Hello there"
    md = extract(b"# Title\n\n- one\n- two\n\n[link](http://x)\n", "README", **LIMITS)
    assert md.media_type == "text/markdown"
    assert [b.kind for b in md.blocks] == ["heading", "list_item", "list_item", "paragraph"]


def test_plain_text_joins_blocks_with_one_blank_line() -> None:
    doc = ExtractedDocument(
        title=None,
        blocks=(Block("heading", "A", level=1), Block("list_item", "b"), Block("paragraph", "c")),
        page_count=None,
        media_type="text/plain",
    )
    assert plain_text(doc) == "A\n\nb\n\nc"
