"""Every page on a phone and in dark mode, checked for what makes a page usable by everyone:
labelled controls, text alternatives, one heading, keyboard focus that shows, text contrast of
at least 4.5:1 (WCAG AA) in both colour schemes, and no sideways scrolling on a small screen."""

from typing import Any

import pytest

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect
pytestmark = pytest.mark.slow

PHONE = {"width": 375, "height": 740}
ANONYMOUS = ["/signin", "/signup", "/about", "/terms", "/pricing"]
SIGNED_IN = [
    "/create",
    "/history",
    "/pricing",
    "/about",
    "/live",
    "/swap",
    "/jobs/0123456789abcdef0123456789abcdef",
]

AUDIT = """() => {
  const problems = [];
  const named = (el) => (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
    (el.labels && el.labels.length) || el.textContent.trim() || el.getAttribute("title"));
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!named(el)) problems.push(`unlabelled ${el.tagName} #${el.id}`);
  }
  for (const el of document.querySelectorAll("a[href], button")) {
    if (!named(el)) problems.push(`nameless ${el.tagName} ${el.outerHTML.slice(0, 60)}`);
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push(`img without alt ${img.src}`);
  }
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  if (!document.documentElement.lang) problems.push("no lang");
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    problems.push(`scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  }

  const parse = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/) || text.match(/color\\(srgb ([^)]+)\\)/);
    if (!m) return null;
    const parts = m[1].replace("/", " ").split(/[ ,]+/).filter(Boolean).map(Number);
    const srgb = text.startsWith("color(");
    const [r, g, b] = parts.slice(0, 3).map((v) => (srgb ? v * 255 : v));
    return { r, g, b, a: parts.length > 3 ? parts[3] : 1 };
  };
  const luminance = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== "none" && node !== document.body) return null;
      const color = parse(style.backgroundColor);
      if (color && color.a > 0.5) return color;
    }
    return parse(getComputedStyle(document.body).backgroundColor);
  };
  const texts = document.querySelectorAll(
    "p, span, a, button, label, legend, h1, h2, h3, li, strong, time, .badge, .alert");
  for (const el of texts) {
    const skipped = el.closest("[hidden], :disabled, [aria-disabled=true], .drop.filled");
    if (!el.checkVisibility() || skipped) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = parse(getComputedStyle(el).color);
    const bg = background(el);
    if (!fg || !bg) continue;
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} for "${text}"`);
  }
  return problems;
}"""


def _audit(page: Any, path: str, name: str, web: Any) -> None:
    page.goto(path)
    problems = page.evaluate(AUDIT)
    assert problems == [], f"{path}: {problems}"
    # The first Tab reaches the skip link, and focus is drawn.
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => [document.activeElement.className, getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused[0] == "skip-link" and focused[1] != "none", focused
    page.keyboard.press("Shift+Tab")
    web.screenshot(page, name)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_on_a_phone(new_page: Any, web: Any, scheme: str) -> None:
    page = new_page(viewport=PHONE, color_scheme=scheme, is_mobile=True, has_touch=True)
    for path in ANONYMOUS:
        _audit(page, path, f"phone-{scheme}-anonymous{path.replace('/', '-')}", web)
    web.sign_up(page, f"phone_{scheme}")
    for path in SIGNED_IN:
        slug = "job-not-found" if path.startswith("/jobs/") else path.strip("/")
        _audit(page, path, f"phone-{scheme}-{slug}", web)
    expect(page.locator("#error-message")).to_contain_text("no such animation")


def test_every_page_in_dark_mode_on_a_desktop(new_page: Any, web: Any) -> None:
    page = new_page(color_scheme="dark")
    for path in ANONYMOUS:
        _audit(page, path, f"desktop-dark-anonymous{path.replace('/', '-')}", web)
    web.sign_up(page, "desktop_dark")
    for path in SIGNED_IN[:4]:
        _audit(page, path, f"desktop-dark-{path.strip('/')}", web)


def test_the_audit_catches_what_it_looks_for(page: Any) -> None:
    page.set_content(
        '<html><body style="background:#fff"><h1>One</h1><h1>Two</h1>'
        '<p style="color:#aaa">faint text</p><input id="x"><img src="data:,">'
        '<div style="width:3000px">wide</div></body></html>'
    )
    problems = " | ".join(page.evaluate(AUDIT))
    for expected in ("unlabelled INPUT #x", "img without alt", "2 h1 elements", "no lang", "contrast 2.32"):
        assert expected in problems
    assert "scrolls sideways" in problems
