"""Screenshots of the three tabs for the README, taken on the real default model.

    python scripts/screenshots.py                                # starts app.py on a free port
    python scripts/screenshots.py --url http://127.0.0.1:7860/ --out shots/

Writes chat.png, eli5.png and ports.png (default folder: docs/screenshots/).
The page actions here are also what the browser tests do, so both stay in step
with the page. Chromium comes from PLAYGROUND_CHROMIUM, else the `chromium` on
PATH, else Playwright's own download.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.load_test import served_app  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",  # containers and CI runners often run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
CHAT_QUESTION = "Is a Docker container the same thing as a virtual machine?"  # the reply, and the course under it
CONCEPT_FOR_SCREENSHOT = "Docker"
PORTS_EXAMPLE = "compose file"
REPLY_WITHIN_MS = 180_000  # the real model on a small CPU takes a while for 256 tokens


def launch_chromium(playwright: Playwright) -> Browser:
    executable = os.environ.get("PLAYGROUND_CHROMIUM") or shutil.which("chromium")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url, wait_until="domcontentloaded")
    return page


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


# -- Chat -------------------------------------------------------------------------------


def message_box(page: Page) -> Locator:
    return page.locator("#chat-input textarea")


BOT_REPLY = ".message:not(.thought) > [data-testid=bot]"  # the model's words; the course's notes are "thought" bubbles


def bot_messages(page: Page) -> Locator:
    return page.locator(BOT_REPLY)


def course_notes(page: Page) -> Locator:
    """The bubbles under a reply: what the course says, or that the reply is not from it."""
    return page.locator(".message.thought > [data-testid=bot]")


def user_messages(page: Page) -> Locator:
    return page.get_by_test_id("user")


def chat_stats(page: Page) -> Locator:
    return page.locator("#chat-stats")


def send_message(page: Page, text: str) -> None:
    message_box(page).fill(text)
    expect(message_box(page)).to_have_value(text)  # a long text is still being taken in on a busy machine
    message_box(page).press("Enter")


def open_chat_settings(page: Page) -> None:
    settings = page.locator("button.label-wrap", has_text="Settings")  # the accordion, not the page footer's link
    if "open" not in (settings.get_attribute("class") or ""):
        settings.click()


def answer_without_the_course(page: Page) -> None:
    """A plain chat: a grounded reply shows whole sentences only, once each can be checked."""
    open_chat_settings(page)
    page.get_by_label("Answer from the course").uncheck()


def wait_for_finished_reply(page: Page, timeout_ms: float) -> None:
    """Until the stats line of a finished reply ("… tokens in, M out") shows."""
    expect(chat_stats(page)).to_contain_text("tokens in", timeout=timeout_ms)


# -- ELI5 -------------------------------------------------------------------------------


def choose_concept(page: Page, title: str) -> Locator:
    """Pick a concept; returns the explainer it shows, found by its heading."""
    page.get_by_label("Concept").click()
    page.get_by_role("option", name=title, exact=True).click()
    heading = page.get_by_role("heading", name=f"{title}:")
    return page.get_by_test_id("markdown").filter(has=heading)


def mermaid_diagrams(scope: Page | Locator) -> Locator:
    """Drawn mermaid diagrams that are on screen (an svg per diagram)."""
    return scope.locator("svg[id^=mermaid]").filter(visible=True)


def check_sample_answer(page: Page) -> None:
    """Explain it back with the concept's sample answer."""
    page.get_by_role("tab", name="Explain it back").click()
    page.get_by_role("button", name="Show a sample answer").click()
    expect(page.get_by_label("Your explanation")).not_to_be_empty()
    page.get_by_role("button", name="Check my explanation").click()


# -- Ports ------------------------------------------------------------------------------


def paste_ports_text(page: Page, text: str) -> None:
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text(text)  # as a paste: no auto-indent


def show_where_traffic_goes(page: Page) -> None:
    page.get_by_role("button", name="Show where traffic goes").click()


def click_ports_example(page: Page, label: str) -> None:
    page.get_by_role("button", name=label, exact=True).click()


# -- the screenshots --------------------------------------------------------------------


def take_screenshots(browser: Browser, url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, url)
    send_message(page, CHAT_QUESTION)
    wait_for_finished_reply(page, REPLY_WITHIN_MS)
    page.screenshot(path=out / "chat.png", full_page=True)

    open_tab(page, "ELI5 Explainers")
    expect(mermaid_diagrams(choose_concept(page, CONCEPT_FOR_SCREENSHOT))).to_have_count(1)
    page.screenshot(path=out / "eli5.png", full_page=True)

    open_tab(page, "Ports & Containers")
    click_ports_example(page, PORTS_EXAMPLE)
    show_where_traffic_goes(page)
    expect(mermaid_diagrams(page)).to_have_count(1)
    page.screenshot(path=out / "ports.png", full_page=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Options it does not know are passed to app.py.")
    parser.add_argument("--url", help="photograph this running app instead of starting one")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args, app_args = parser.parse_known_args(argv)
    with served_app(args.url, app_args) as (url, _), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            take_screenshots(browser, url, args.out)
        finally:
            browser.close()
    print(f"Screenshots in {args.out}")


if __name__ == "__main__":
    main()
