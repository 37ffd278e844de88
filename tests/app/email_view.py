"""Render a received alert email's HTML in Chromium, as a mail client shows it.

``cid:`` references are replaced with the related parts' data, as mail clients do.
``python -m tests.app.email_view MAIL.eml OUT.png`` makes the screenshot in docs/ from an
email the demo's SMTP sink saved.
"""

from __future__ import annotations

import base64
import email
import email.policy
import sys
from email.message import EmailMessage
from pathlib import Path


def inline_html(msg: EmailMessage) -> str:
    """The HTML part with every ``cid:`` image turned into a data: URL."""
    html = msg.get_body(("html",)).get_content()
    for part in msg.walk():
        cid = part["Content-ID"]
        if cid and part.get_content_maintype() == "image":
            data = base64.b64encode(part.get_content()).decode()
            html = html.replace(
                f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}"
            )
    return html


def read_eml(path: Path) -> EmailMessage:
    """A saved .eml file as an EmailMessage."""
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def screenshot(msg: EmailMessage, out: Path, chromium: str) -> dict[str, object]:
    """Screenshot the email's HTML at mail-client width; return what the page showed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 680, "height": 640})
        page.set_content(inline_html(msg), wait_until="load")
        seen = page.evaluate(
            "() => ({img: [...document.images].map(i => [i.naturalWidth, i.naturalHeight]),"
            " text: document.body.innerText, links: [...document.links].map(a => a.href),"
            " xss: window.__xss || null})"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return seen


if __name__ == "__main__":
    from tests.app.server import CHROMIUM

    print(screenshot(read_eml(Path(sys.argv[1])), Path(sys.argv[2]), CHROMIUM or "chromium"))
