"""The whole flow a person follows, in Chromium against the live server and the real pipeline:
sign up → buy credits (local test-mode provider) → upload → progress → play → download →
History (thumbnail, re-run, cancel, pagination, delete)."""

import re
from pathlib import Path
from typing import Any

import av
import pytest

expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install playwright)"
).expect

pytestmark = pytest.mark.slow
JOB_MS = 180_000  # how long the real pipeline may take on a busy machine before the test gives up
# Reports the job page's stage label on load and at every change, to a function the test exposes.
STAGE_REPORTER = """
addEventListener("DOMContentLoaded", () => {
  const stage = document.getElementById("job-stage");
  if (!stage) return;
  const report = () => window.reportStage(stage.textContent);
  report();
  new MutationObserver(report).observe(stage, { childList: true, characterData: true, subtree: true });
});
"""
ANIMATING_OR_DONE = """() => {
  const stage = document.getElementById("job-stage");
  return !stage ? document.readyState === "complete" : stage.textContent === "Animating frames";
}"""


def _drop_file(page: Any, selector: str, path: Path, mime: str) -> None:
    """Drag a real file onto a drop zone the way a browser does: a drop event carrying it."""
    payload = list(path.read_bytes())
    page.evaluate(
        """([selector, bytes, name, mime]) => {
            const file = new File([new Uint8Array(bytes)], name, { type: mime });
            const transfer = new DataTransfer();
            transfer.items.add(file);
            const zone = document.querySelector(selector);
            zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""",
        [selector, payload, path.name, mime],
    )


def test_sign_up_buy_animate_play_download_history(
    page: Any, media: Any, web: Any, worker_gate: Any, tmp_path: Path
) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    web.screenshot(page, "01-sign-in")
    page.get_by_role("link", name="Sign up", exact=True).first.click()
    expect(page.get_by_role("button", name="Create account")).to_be_visible()
    web.screenshot(page, "02-sign-up")
    web.sign_up(page, "ada")
    expect(page.locator("#flash")).to_contain_text("Welcome")
    expect(page.locator(".user-label")).to_have_text("ada")
    free = web.credit_count(page)
    assert free == 3
    web.screenshot(page, "03-create-empty")

    # Buy the PRO pack: select the card, check out on the test-mode page, come back.
    page.get_by_role("link", name="Pricing").first.click()
    pro = page.get_by_role("radio", name=re.compile("PRO"))
    page.locator("label[for=plan-pro]").click()
    expect(pro).to_be_checked()
    web.screenshot(page, "04-pricing-selected")
    page.get_by_role("button", name="Continue to checkout").click()
    expect(page.get_by_text("TEST MODE: no real payment")).to_be_visible()
    web.screenshot(page, "05-test-mode-checkout")
    page.get_by_role("button", name=re.compile("Pay")).click()
    expect(page.get_by_text("Paid: the credits were added.")).to_be_visible()
    page.get_by_role("link", name="Back to Animatica").click()
    expect(page).to_have_url(re.compile(r"/pricing\?success=true&session_id=cs_local_"))
    expect(page.locator("#payment-notice")).to_contain_text("Payment was successful! 50 credits were added")
    web.expect_credits(page, free + 50)
    web.screenshot(page, "06-pricing-paid")
    page.goto("/pricing")  # said once, then forgotten
    expect(page.locator("#payment-notice")).to_have_count(0)

    # Create: Generate waits for both files; the picture is chosen, the video dropped.
    page.get_by_role("link", name="Create").first.click()
    page.wait_for_url(re.compile(r"/create$"))  # and its load: the page's script listens from then on
    generate = page.get_by_role("button", name="Generate")
    expect(generate).to_be_disabled()
    page.set_input_files("#source_image", str(media.face))
    expect(page.locator("#source-preview")).to_be_visible()
    expect(page.locator("#source-preview")).to_have_js_property("naturalWidth", 256)
    expect(generate).to_be_disabled()
    _drop_file(page, "#driving-drop", media.driving, "video/mp4")
    expect(page.locator("#driving-meta")).to_contain_text("talking.mp4")
    expect(page.locator("#driving-meta")).to_contain_text("1.0 s")
    page.wait_for_function("() => document.getElementById('driving-preview')?.readyState >= 1")
    page.get_by_label("Adapt scale").check()
    expect(generate).to_be_enabled()
    web.screenshot(page, "07-create-ready")

    # The live job view: first held in the queue, so that its first state is certain; then the page
    # follows the job's stages and reloads into the player when the job is done. Every stage the
    # page shows is reported to the test as it changes, so no reading can meet a reload.
    stages: set[str] = set()

    def report_stage(label: str) -> None:
        stages.add(label)

    page.expose_function("reportStage", report_stage)
    page.add_init_script(STAGE_REPORTER)
    worker_gate.hold()
    generate.click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#job-status")).to_have_text("Queued")
    expect(page.locator("#job-progress")).to_be_visible()
    expect(page.locator("#job-stage")).to_have_text("Waiting in the queue")
    web.screenshot(page, "08-job-progress")
    worker_gate.release()
    # Ends on the animating stage, or on the finished page if the page never showed that stage.
    page.wait_for_function(ANIMATING_OR_DONE, timeout=JOB_MS)
    web.screenshot(page, "08b-job-animating")
    video = page.locator("#result-video")
    expect(video).to_be_visible(timeout=JOB_MS)
    expect(page.locator("#job-status")).to_have_text("Ready")
    # Which stages the page showed between the queue and the result depends on how fast the job runs
    # against the page's status updates, so only the stages it must have shown are checked here.
    assert "Waiting in the queue" in stages, f"stages seen: {stages}"
    web.expect_credits(page, free + 50 - 1)

    # Play: the browser decodes the H.264 result and time advances.
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.getElementById('result-video')?.currentTime > 0.1")
    size = page.eval_on_selector("#result-video", "v => [v.videoWidth, v.videoHeight]")
    assert min(size) > 0
    web.screenshot(page, "09-job-result")

    # Download: saved under the documented name, a real MP4 with every frame.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download MP4").click()
    download = info.value
    assert download.suggested_filename == f"animatica-{job_id}.mp4"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with av.open(str(saved)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 25

    # History: the job with its thumbnail; re-run it, cancel the new one (credit comes back).
    page.get_by_role("link", name="History").first.click()
    item = page.locator(f"li[data-job-id='{job_id}']")
    expect(item).to_be_visible()
    expect(item.locator(".badge")).to_have_text("Ready")
    page.wait_for_function(
        f"() => document.querySelector(\"li[data-job-id='{job_id}'] img\")?.naturalWidth > 0"
    )
    web.screenshot(page, "10-history")
    worker_gate.hold()  # the re-run stays queued until it is canceled: no race with its finishing
    item.get_by_role("button", name=re.compile("Re-run")).click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    rerun_id = page.url.rsplit("/", 1)[1]
    assert rerun_id != job_id
    expect(page.locator("#job-status")).to_have_text("Queued")
    web.expect_credits(page, free + 50 - 2)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-status")).to_have_text("Canceled")
    expect(page.locator("#job-error")).to_contain_text("Canceled")
    web.expect_credits(page, free + 50 - 1)
    worker_gate.release()

    # Pagination, one per page: newest first.
    page.goto("/history?per=1")
    expect(page.locator(".pagination")).to_contain_text("Page 1 of 2")
    expect(page.locator(f"li[data-job-id='{rerun_id}']")).to_be_visible()
    page.get_by_role("link", name=re.compile("Older")).click()
    expect(page.locator(f"li[data-job-id='{job_id}']")).to_be_visible()
    expect(page.locator(".pagination")).to_contain_text("Page 2 of 2")

    # Delete the canceled one; the finished one stays.
    page.goto("/history")
    page.locator(f"li[data-job-id='{rerun_id}']").get_by_role("button", name=re.compile("Delete")).click()
    expect(page.locator("#flash")).to_contain_text("deleted")
    expect(page.locator("li[data-job-id]")).to_have_count(1)
    assert page.request.get(f"/jobs/{rerun_id}/status").status == 404

    # Sign out: the pages ask to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#flash")).to_contain_text("signed out")
    page.goto("/history")
    expect(page).to_have_url(re.compile(r"/signin\?next=/history$"))
