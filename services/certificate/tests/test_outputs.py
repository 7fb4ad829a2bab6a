"""What a certificate looks like to its holder and to everyone else: JSON with its text
filled in, a PDF with a QR code, the public verify page, and revocation (the signed Open
Badges credential is in test_open_badges.py)."""

from __future__ import annotations

import io
import uuid
from typing import Any

from pypdf import PdfReader

REVOKED = "io.sukverse.certificate.certificate.revoked.v1"


async def test_json_fills_in_the_placeholders(api: Any, settings: Any) -> None:
    student = api.account("outputs-student")
    summary = await api.award(student)
    response = await api.client.get(f"/certificates/{summary['id']}", headers=student.headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    date = body["issued_at"][:10]
    assert body["name"] == "Ada Lovelace"
    assert body["workshop"] == "Kubernetes Operators"
    assert body["title"] == "Certificate of Kubernetes Operators"
    assert body["body"] == (
        f"Ada Lovelace completed Kubernetes Operators on {date} (certificate {summary['id']})."
    )
    assert body["verify_url"] == (
        f"{settings.public_base_url}/verify/{summary['verification_code']}"
    )
    assert body["status"] == "valid"
    assert [c["id"] for c in await api.certificates(student)] == [summary["id"]]


async def test_verify_says_valid_revoked_or_unknown_and_nothing_more(api: Any) -> None:
    student = api.account("verify-student")
    admin = api.account("admin", "admin")
    summary = await api.award(student, name="Grace Hopper")
    code = summary["verification_code"]

    response = await api.client.get(f"/verify/{code}")  # no token: public
    assert response.status == 200
    body = await response.json()
    assert body == {
        "status": "valid",
        "name": "Grace Hopper",
        "workshop": "Kubernetes Operators",
        "issued_on": summary["issued_at"][:10],
    }

    path = f"/certificates/{summary['id']}/revoke"
    for _ in range(2):  # the second revoke changes nothing
        response = await api.client.post(path, json={"reason": "plagiarism"}, headers=admin.headers)
        assert response.status == 200, await response.text()
        revoked = await response.json()
        assert revoked["status"] == "revoked"
        assert revoked["revoked_reason"] == "plagiarism"
    events = await api.wait_events(lambda e: e.type == REVOKED, 1)
    assert len(events) == 1
    assert events[0].data["certificate_id"] == summary["id"]
    assert events[0].data["reason"] == "plagiarism"
    assert events[0].data["revoked_by"] == str(admin.id)

    # Late facts after revoking change nothing: no second certificate, no new event.
    facts = api.facts(uuid.UUID(summary["workshop_id"]))
    await api.publish_and_wait(facts.completed(student.id), facts.substep(student.id, 4))
    [again] = await api.certificates(admin, workshop_id=summary["workshop_id"])
    assert (again["id"], again["status"]) == (summary["id"], "revoked")
    assert len(api.issued()) == 1

    body = await (await api.client.get(f"/verify/{code}")).json()
    assert body["status"] == "revoked"
    assert set(body) == {"status", "name", "workshop", "issued_on"}
    response = await api.client.get(
        f"/certificates/{summary['id']}/credential", headers=student.headers
    )
    assert response.status == 410

    for unknown in ("nope", code[:-1], "x" * 500, "%00", "a%2Fb"):
        response = await api.client.get(f"/verify/{unknown}")
        assert response.status in (200, 404)
        if response.status == 200:
            assert await response.json() == {
                "status": "unknown",
                "name": None,
                "workshop": None,
                "issued_on": None,
            }


async def test_pdf_is_a_real_pdf_with_name_code_and_link(api: Any, settings: Any) -> None:
    student = api.account("pdf-student")
    summary = await api.award(student, name="Katherine Johnson")
    response = await api.client.get(f"/certificates/{summary['id']}.pdf", headers=student.headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/pdf"
    data = await response.read()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "Katherine Johnson" in text
    assert summary["verification_code"] in text
    assert f"{settings.public_base_url}/verify/" in text
    # The QR code is drawn: hundreds of filled squares in the page's content stream.
    content = reader.pages[0].get_contents()
    assert content is not None
    assert content.get_data().count(b" re") > 100


async def test_pdf_prints_accented_names_and_survives_other_scripts(api: Any) -> None:
    """The built-in fonts cover Latin-1: accented names print as they are; characters
    beyond it print as '?' rather than failing the PDF."""
    for account, name, printed in (
        ("pdf-accented", "Zoë Ångström", "Zoë Ångström"),
        ("pdf-other-script", "李 Wei", "? Wei"),
    ):
        student = api.account(account)
        summary = await api.award(student, name=name)
        response = await api.client.get(
            f"/certificates/{summary['id']}.pdf", headers=student.headers
        )
        assert response.status == 200, await response.text()
        text = PdfReader(io.BytesIO(await response.read())).pages[0].extract_text()
        assert printed in text


def test_the_pdf_renders_the_templates_markdown() -> None:
    """Bold, italics and line breaks are typeset, not printed as asterisks; what is not
    Markdown emphasis (a dash pair, a link-like text) prints as written."""
    from sukverse_certificate.pdf import Printable, render_pdf

    def fonts_and_lines(body: str) -> tuple[set[str], list[str]]:
        data = render_pdf(
            Printable(
                title="Certificate",
                body=body,
                name="Ada Lovelace",
                workshop="Operators",
                issued_on="2026-12-03",
                verify_url="https://c.example/verify/X",
                code="X",
            )
        )
        page = PdfReader(io.BytesIO(data)).pages[0]
        fonts = {str(f["/BaseFont"]) for f in page["/Resources"]["/Font"].values()}
        return fonts, [line.strip() for line in page.extract_text().splitlines()]

    fonts, lines = fonts_and_lines(
        "Ada Lovelace **completed** the *whole* workshop\nin steps 1--3, see [notes](x)."
    )
    assert "Ada Lovelace completed the whole workshop" in lines
    assert "in steps 1--3, see [notes](x)." in lines
    assert not any("**" in line or "*whole*" in line for line in lines)
    assert {"/Helvetica-Bold", "/Helvetica-Oblique"} <= fonts
    plain, _ = fonts_and_lines("Ada Lovelace completed the workshop.")
    assert "/Helvetica-Oblique" not in plain
    # A name filled into the text is not Markdown: its asterisks print as they are.
    from sukverse_certificate.pdf import markdown_literal

    named, lines = fonts_and_lines(markdown_literal("Ada *the* Count_ess \\o/") + " completed.")
    assert "Ada *the* Count_ess \\o/ completed." in lines
    assert "/Helvetica-Oblique" not in named
