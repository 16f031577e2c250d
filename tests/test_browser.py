"""What a person does in each tab, in a real Chromium driven by Playwright, on the tiny model.

A screenshot of each tab is kept in $PLAYGROUND_ARTIFACTS (default ./artifacts/).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from demos.chat_logic import MAX_MESSAGE_CHARS, MIN_REPLY_TOKENS
from demos.eli5.content import concepts, get_concept
from scripts.screenshots import (
    BOT_REPLY,
    answer_without_the_course,
    bot_messages,
    chat_stats,
    check_sample_answer,
    choose_concept,
    course_notes,
    click_ports_example,
    launch_chromium,
    mermaid_diagrams,
    message_box,
    open_chat_settings,
    open_page,
    open_tab,
    paste_ports_text,
    send_message,
    show_where_traffic_goes,
    user_messages,
    wait_for_finished_reply,
)
from tests.helpers import wait_for
from tests.test_explain_back import CASES
from tests.test_hostile import assert_one_more_cancelled, cancelled_count

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("PLAYGROUND_ARTIFACTS", "artifacts"))
TIMEOUT_MS = 30_000  # generous: two slow cores may be busy with other tests
STILL_FOR_MS = 1_500  # a paced reply would grow by dozens of tokens in this time
NEGATED_DOCKER = CASES["docker"][0]
COMPOSE = """\
services:
  web:
    image: nginx
    ports: ["8080:80"]
  api:
    image: my-api
    ports: ["8080:8000"]
"""


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, running_app):
    expect.set_options(timeout=TIMEOUT_MS)
    page = open_page(browser, running_app[0])
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    page.context.close()


def keep_screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def reply_length(page: Page) -> int:
    return len(bot_messages(page).last.inner_text())


def wait_until_reply_longer_than(page: Page, length: int, timeout_ms: float = TIMEOUT_MS) -> int:
    page.wait_for_function(
        "([n, selector]) => { const bots = document.querySelectorAll(selector);"
        " return bots.length > 0 && bots[bots.length - 1].innerText.length > n; }",
        arg=[length, BOT_REPLY],
        timeout=timeout_ms,
    )
    return reply_length(page)


# -- Chat -------------------------------------------------------------------------------


def test_the_reply_streams_in(page, paced_engine):
    answer_without_the_course(page)  # the tiny model's random text has few sentence ends to stream by
    send_message(page, "Hello there")
    expect(user_messages(page)).to_have_text("Hello there")
    lengths = [wait_until_reply_longer_than(page, 0)]
    while len(lengths) < 4:
        lengths.append(wait_until_reply_longer_than(page, lengths[-1]))
    expect(chat_stats(page)).to_have_text("Generating…")  # seen while it still grows
    wait_for_finished_reply(page, TIMEOUT_MS)
    assert reply_length(page) >= lengths[-1]
    keep_screenshot(page, "chat.png")


def test_stop_midway(page, paced_engine):
    before = cancelled_count(paced_engine)
    answer_without_the_course(page)
    send_message(page, "Tell me a long story")
    wait_until_reply_longer_than(page, 0)
    page.get_by_test_id("stop-button").click()
    assert_one_more_cancelled(paced_engine, before)
    stopped_at = reply_length(page)
    with pytest.raises(PlaywrightError, match="Timeout"):
        wait_until_reply_longer_than(page, stopped_at, STILL_FOR_MS)
    expect(chat_stats(page)).to_have_text("Stopped.", use_inner_text=True)
    expect(page.get_by_text("Error", exact=True).filter(visible=True)).to_have_count(0)


@pytest.mark.parametrize("message, reason", [("   ", "Type a message first"), ("x" * (MAX_MESSAGE_CHARS + 1), "at most 16,000")])
def test_a_refused_message_stays_in_the_box_and_the_chat_goes_on(page, tiny_engine, message, reason):
    send_message(page, message)
    expect(page.get_by_text(reason)).to_be_visible()
    expect(message_box(page)).to_be_enabled()
    expect(message_box(page)).to_have_value(message)
    expect(user_messages(page)).to_have_count(0)
    send_message(page, "Hi")
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(user_messages(page)).to_have_text(["Hi"])


def test_a_course_question_shows_the_course_under_the_reply_and_opens_its_explainer(page, roomy_app):
    send_message(page, "Which port does Streamlit use by default?")
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(chat_stats(page)).not_to_contain_text("not")  # neither "not covered" nor "did not fit"
    expect(bot_messages(page)).to_have_count(1)
    expect(course_notes(page)).to_have_count(1)
    expect(course_notes(page)).to_contain_text("From the course")
    expect(course_notes(page)).to_contain_text("8501")
    page.get_by_role("button", name="Open the Ports explainer").click()
    expect(page.get_by_role("tab", name="ELI5 Explainers")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Concept")).to_have_value(get_concept("ports").title)
    expect(page.get_by_role("tab", name="Explainer", exact=True)).to_have_attribute("aria-selected", "true")


def test_a_greeting_is_marked_as_not_from_the_course(page, tiny_engine):
    send_message(page, "Hello there")
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(course_notes(page)).to_have_text(re.compile("Not from the course"))
    expect(page.locator(".chat-source-link").filter(visible=True)).to_have_count(0)


def test_retry_then_undo(page, tiny_engine):
    send_message(page, "Hi")
    wait_for_finished_reply(page, TIMEOUT_MS)
    finished = sum(tiny_engine.info()["finished_requests"].values())
    page.get_by_role("button", name="Retry").click()
    wait_for(lambda: sum(tiny_engine.info()["finished_requests"].values()) == finished + 1, TIMEOUT_MS / 1000)
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(user_messages(page)).to_have_text(["Hi"])
    expect(bot_messages(page)).to_have_count(1)

    # No in-place edit: its reply could not be stopped, and a refused edit would lock the chat. Undo puts it back instead.
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    page.get_by_role("button", name="Undo").click()
    expect(bot_messages(page)).to_have_count(0)
    expect(user_messages(page)).to_have_count(0)
    expect(message_box(page)).to_have_value("Hi")


# -- ELI5 -------------------------------------------------------------------------------


def saved_chats(page: Page) -> str:
    """What the page keeps in the browser (encrypted by gradio's BrowserState, so only compared)."""
    return page.evaluate("() => JSON.stringify(localStorage)")


def test_a_chat_survives_a_reload_and_goes_on(page, tiny_engine):
    answer_without_the_course(page)
    before = saved_chats(page)
    send_message(page, "What is a container?")
    wait_for_finished_reply(page, TIMEOUT_MS)
    first_reply = bot_messages(page).last.inner_text()
    wait_for(lambda: saved_chats(page) != before, timeout=TIMEOUT_MS / 1000)
    page.reload(wait_until="domcontentloaded")
    expect(user_messages(page)).to_have_count(0)  # a reload opens a new chat…
    page.get_by_text("What is a container?", exact=True).click()  # …beside the list of saved ones
    expect(user_messages(page)).to_have_text(["What is a container?"])
    expect(bot_messages(page).first).to_have_text(first_reply, use_inner_text=True)
    answer_without_the_course(page)
    send_message(page, "Give me one example.")
    expect(user_messages(page)).to_have_text(["What is a container?", "Give me one example."])
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(bot_messages(page)).to_have_count(2)


def test_an_export_downloads_the_conversation(page, tiny_engine):
    answer_without_the_course(page)
    send_message(page, "Why would I map port 7860?")
    wait_for_finished_reply(page, TIMEOUT_MS)
    reply_word = max(re.findall(r"[A-Za-z]{4,}", bot_messages(page).last.inner_text()), key=len)  # the tiny model's text is mostly noise
    page.locator("#chat-export").click()
    files = page.locator("#chat-exported a")
    expect(files).to_have_count(2)
    for link, name in ((files.nth(0), ".md"), (files.nth(1), ".json")):
        with page.expect_download() as download:
            link.click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert download.value.suggested_filename == f"chat-why-would-i-map-port-7860{name}"
        assert "Why would I map port 7860?" in text and reply_word in text
    record = json.loads(text)
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["settings"]["grounded"] is False and "tokens in" in record["latest_stats"]


def test_clear_stops_the_reply_that_streams(page, paced_engine):
    before = cancelled_count(paced_engine)
    answer_without_the_course(page)
    send_message(page, "Tell me a long story")
    wait_until_reply_longer_than(page, 0)
    page.locator("#chatbot").get_by_label("Clear").click()
    assert_one_more_cancelled(paced_engine, before)
    expect(user_messages(page)).to_have_count(0)
    send_message(page, "Hi")
    expect(user_messages(page)).to_have_text(["Hi"])
    wait_for_finished_reply(page, TIMEOUT_MS)


def fits_alone_not_beside(engine, system: str) -> str:
    """A message the context holds alone, with room for a reply, but not after `system`."""
    limit = engine.max_seq_len - MIN_REPLY_TOKENS
    message = "Please explain images."
    while engine.count_tokens([{"role": "system", "content": system}, {"role": "user", "content": message}]) <= limit:
        message += " And containers."
    assert engine.count_tokens([{"role": "user", "content": message}]) < limit
    return message


@pytest.mark.parametrize("oversized", [False, True], ids=["message beside the system prompt", "system prompt alone"])
def test_a_message_that_no_longer_fits_beside_the_system_prompt_is_answered_with_why(page, tiny_engine, oversized):
    system = "Always answer as a ship's captain would, with a nautical word. " * (40 if oversized else 2)
    open_chat_settings(page)
    system_box = page.get_by_label("System prompt")
    # On a busy machine the page can still be filling in its settings' first values after the box is
    # shown, and put the default back over a text typed too early: type it until it stays.
    for _ in range(5):
        system_box.fill(system)
        page.wait_for_timeout(STILL_FOR_MS)
        if system_box.input_value() == system:
            break
    expect(system_box).to_have_value(system)
    system_box.blur()
    send_message(page, "Hello" if oversized else fits_alone_not_beside(tiny_engine, system))
    expect(page.get_by_text("⚠️ Not answered")).to_be_visible()
    expect(page.get_by_text("context").filter(visible=True).first).to_be_visible()
    expect(message_box(page)).to_be_enabled()
    page.get_by_label("System prompt").fill("Be brief.")
    answer_without_the_course(page)
    send_message(page, "Hi")
    wait_for_finished_reply(page, TIMEOUT_MS)
    expect(user_messages(page)).to_have_count(2)


@pytest.fixture
def loading_app(tiny_engine):
    """The app on a model that takes a few seconds to load; `outcome` says what the load ends in."""
    import time

    from app import build_app, launch
    from demos.model_slot import ModelSlot

    outcome = {"error": None}
    slot = ModelSlot()

    def slow_load(report):
        report("Loading the test model…")
        time.sleep(4)
        if outcome["error"]:
            raise RuntimeError(outcome["error"])
        return tiny_engine

    demo = build_app(slot, concurrency=2)
    demo.queue()
    _, url, _ = launch(demo, slot, server_name="127.0.0.1", quiet=True)
    yield url, outcome, lambda: slot.load_in_background(slow_load)
    demo.close()


def test_a_model_that_fails_to_load_is_named_in_the_chat_and_the_box_stays_open(browser, loading_app):
    url, outcome, start_loading = loading_app
    outcome["error"] = "no weights in the test folder"
    start_loading()
    page = open_page(browser, url)
    try:
        send_message(page, "Hello")
        expect(page.get_by_text("⏳ The model is loading")).to_be_visible()
        expect(page.get_by_text("⚠️ Not answered")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_text("no weights in the test folder").first).to_be_visible()
        expect(message_box(page)).to_be_enabled()
    finally:
        page.context.close()


def test_stop_while_the_model_loads_leaves_no_empty_bubble(browser, loading_app):
    url, _, start_loading = loading_app
    start_loading()
    page = open_page(browser, url)
    try:
        answer_without_the_course(page)
        send_message(page, "Hello")
        expect(page.get_by_text("⏳ The model is loading")).to_be_visible()
        page.get_by_test_id("stop-button").click()
        expect(chat_stats(page)).to_have_text("Stopped.", use_inner_text=True)
        expect(page.locator("[data-testid=bot]").filter(has_text=re.compile(r"^\s*$"))).to_have_count(0)
        expect(page.get_by_text("Model ready")).to_be_visible(timeout=TIMEOUT_MS)
        send_message(page, "Hi")
        wait_for_finished_reply(page, TIMEOUT_MS)
    finally:
        page.context.close()


def test_each_concept_draws_its_diagram_and_the_sample_answer_is_great(page):
    open_tab(page, "ELI5 Explainers")
    for concept_id in reversed(concepts()):  # the first is shown already; end on it to check it again
        explainer = choose_concept(page, get_concept(concept_id).title)
        expect(mermaid_diagrams(explainer)).to_have_count(1)
        expect(mermaid_diagrams(explainer).locator(".node").first).to_be_visible()
    keep_screenshot(page, "eli5.png")
    check_sample_answer(page)
    expect(page.get_by_role("heading", name="Great: your listener would get it.")).to_be_visible()


def test_a_negated_explanation_is_answered_with_the_learners_words_and_the_courses(page):
    open_tab(page, "ELI5 Explainers")
    page.get_by_role("tab", name="Explain it back").click()
    page.get_by_label("Your explanation").fill(NEGATED_DOCKER)
    page.get_by_role("button", name="Check my explanation").click()
    expect(page.get_by_role("heading", name=re.compile("Needs work"))).to_be_visible()
    expect(page.get_by_text("You wrote “Docker is not a box”, which denies this idea.", exact=False)).to_be_visible()
    expect(page.get_by_text("The course says: It packs the app together with everything the app needs.", exact=False)).to_be_visible()


def test_a_concept_chosen_in_another_part_of_the_tab_is_shown_with_its_diagram(page):
    open_tab(page, "ELI5 Explainers")
    page.get_by_role("tab", name="Explain it back").click()
    explainer = choose_concept(page, get_concept("kubernetes").title)
    expect(page.get_by_role("tab", name="Explainer", exact=True)).to_have_attribute("aria-selected", "true")
    expect(mermaid_diagrams(explainer).locator(".node").first).to_be_visible()


def test_diagrams_keep_a_readable_size_on_a_phone(page):
    page.set_viewport_size({"width": 390, "height": 844})
    open_tab(page, "ELI5 Explainers")
    diagram = mermaid_diagrams(page).first
    expect(diagram).to_be_visible()
    # Scaled to the phone's width, a wide diagram's labels would shrink to a third of their size.
    wait_for(lambda: (diagram.bounding_box() or {"width": 0})["width"] >= 700, TIMEOUT_MS / 1000)  # None while redrawn


# -- Ports ------------------------------------------------------------------------------


def test_a_pasted_compose_file_is_drawn_with_its_problems(page):
    open_tab(page, "Ports & Containers")
    paste_ports_text(page, COMPOSE)
    show_where_traffic_goes(page)
    expect(mermaid_diagrams(page)).to_have_count(1)
    expect(mermaid_diagrams(page)).to_contain_text("all addresses:8080")
    expect(page.get_by_text("Two mappings want the same extension")).to_be_visible()
    expect(page.get_by_text(re.compile(r"public-bind.*Host port 8080 has no address")).first).to_be_visible()
    keep_screenshot(page, "ports.png")


def test_an_example_fills_the_editor_and_is_drawn(page):
    open_tab(page, "Ports & Containers")
    click_ports_example(page, "compose file")
    expect(page.locator(".cm-content")).to_contain_text("services:")
    show_where_traffic_goes(page)
    expect(mermaid_diagrams(page)).to_have_count(1)
    expect(page.get_by_text("privileged-port").first).to_be_visible()
