"""The playground page in a real browser: Debian's Chromium, driven by Playwright.

The test loads the page from a live server, streams a completion and a chat answer, and checks
that the "look inside" panel renders: coloured tokens with ids, next-token candidates, and an
attention map per head drawn on canvases. Screenshots go to the test's temporary folder; set
BYOLLM_UPDATE_SCREENSHOTS=1 to also refresh the one the docs show
(docs/assets/09-playground.png), e.g. with BYOLLM_PLAYGROUND_CHECKPOINT=runs/shakespeare-char
for a trained model instead of the tiny random one.

Skipped, with the reason, where /usr/bin/chromium or the playwright package is missing
(`apt-get install chromium`; `pip install playwright`, no `playwright install` needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")

from serve_helpers import live_server, tiny_checkpoint  # noqa: E402

from byollm.model import read_model_config  # noqa: E402
from byollm.tokenizer import find_tokenizer_file, load_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS_SCREENSHOT = ROOT / "docs" / "assets" / "09-playground.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(tmp_path):
    """A fresh headless Chromium page (its own profile folder), closed after the test."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert not errors, f"the page raised: {errors}"


def canvas_is_drawn(page, selector: str) -> bool:
    """True when the canvas has pixels of more than one colour (a map, not a blank)."""
    return page.eval_on_selector(
        selector,
        """canvas => {
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        const colours = new Set();
        for (let i = 0; i < data.length; i += 4 * 97) colours.add(data.slice(i, i + 4).join());
        return colours.size > 3;
    }""",
    )


def test_playground_streams_and_looks_inside(page, tmp_path):
    checkpoint = os.environ.get("BYOLLM_PLAYGROUND_CHECKPOINT")
    checkpoint = Path(checkpoint) if checkpoint else tiny_checkpoint(tmp_path / "tiny", 128)
    config = read_model_config(checkpoint)
    t_id = load_tokenizer(find_tokenizer_file(checkpoint)).encode("T")[0]
    with live_server(checkpoint) as live:
        page.goto(live.url + "/")
        page.wait_for_selector("body[data-state=idle]")
        assert f"{config.n_layer} layers × {config.n_head} heads" in page.inner_text("#model-info")
        # A completion, streamed: the text grows, then the panel fills in.
        page.fill("#prompt", "To be, or not to be")
        page.fill("#max_tokens", "40")
        page.fill("#seed", "1")
        page.click("#run")
        page.wait_for_selector("body[data-state=inspected]", timeout=20_000)
        assert "done: 40 tokens" in page.inner_text("#status")
        output = page.inner_text("#completion-output")
        assert output.startswith("To be, or not to be") and len(output) > len("To be, or not to be")
        tokens = page.locator("#tokens .token")
        assert tokens.count() == 19 + 40 + 1  # prompt + generated + "what comes next"
        assert page.locator("#tokens .token.generated").count() == 40
        assert page.locator("#tokens .token .id").first.inner_text() == str(t_id)
        assert page.locator("#candidates .bar-row").count() == 10
        assert page.locator("#heads canvas").count() == config.n_head  # a map per head of layer 0
        assert canvas_is_drawn(page, "#attention") and canvas_is_drawn(page, "#heads canvas")
        # Select a generated token: its candidates mark the one that was drawn.
        tokens.nth(25).click()
        assert "for position 25" in page.inner_text("#step-label")
        assert page.locator("#candidates .bar-row.chosen").count() <= 1
        page.select_option("#token-colour", "attention")
        page.select_option("#layer", "1")
        page.wait_for_function(
            "document.querySelector('#heads figcaption').textContent === 'L1 H0'"
        )
        assert "for position 25" in page.inner_text("#step-label")  # the selection stays
        page.screenshot(path=str(tmp_path / "playground-completion.png"), full_page=True)
        if os.environ.get("BYOLLM_UPDATE_SCREENSHOTS") == "1":
            page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
        # A chat turn, streamed, inspected with the chat template around it.
        page.click("#tab-chat")
        page.fill("#chat-input", "To be")
        page.click("#run")
        page.wait_for_selector("body[data-state=inspected]", timeout=20_000)
        assert page.locator("#messages .message.assistant").count() == 1
        assert page.inner_text("#messages .message.user .text") == "To be"
        page.screenshot(path=str(tmp_path / "playground-chat.png"), full_page=True)
    assert (tmp_path / "playground-completion.png").stat().st_size > 10_000
