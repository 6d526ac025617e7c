"""The operator's contact on the About page: linked when it is an address or a web URL, shown as
plain text otherwise, absent when unset."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.web.test_pages_http import _settings

from animatica.service.pages.pricing import contact_link


def test_contact_links_only_what_is_safe_to_link() -> None:
    assert contact_link("") is None and contact_link("   ") is None
    assert contact_link(" ops@example.org ") == {"text": "ops@example.org", "href": "mailto:ops@example.org"}
    assert contact_link("https://example.org/help") == {
        "text": "https://example.org/help",
        "href": "https://example.org/help",
    }
    assert contact_link("javascript:alert(1)") == {"text": "javascript:alert(1)", "href": None}
    assert contact_link("Call +33 1 23 45 67 89")["href"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ("", None),
        ("ops@example.org", '<a href="mailto:ops@example.org">ops@example.org</a>'),
        ("<b>desk</b>", "&lt;b&gt;desk&lt;/b&gt;"),
    ],
)
def test_about_page_shows_the_configured_contact(tmp_path: Path, contact: str, expected: str | None) -> None:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path, contact=contact))) as client:
        page = client.get("/about").text
    if expected is None:
        assert 'id="contact"' not in page
    else:
        assert 'id="contact"' in page and expected in page
