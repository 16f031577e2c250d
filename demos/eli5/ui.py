"""The ELI5 Explainers tab: explainers, "explain it back", and a searchable glossary.

Only Gradio wiring lives here; the words are in the data files and the
logic in content.py, checker.py and prompts.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial

import gradio as gr

from demos.chat_logic import SAMPLING_DEFAULTS
from demos.model_slot import POLL_SECONDS, ModelSlot
from demos.tools import tool

from .checker import check_explanation, feedback_markdown
from .content import GLOSSARY_EXAMPLES, concepts, explainer_markdown, get_concept, glossary_markdown
from .prompts import fresh_analogy_messages, review_messages

AUDIENCES = ["a friend who doesn't code", "your manager"]

INTRO = """# Big ideas in small words
Pick a concept and read its explainer: plain words first, then an everyday
analogy, a picture, a common mix-up, and finally the technical words with a
real example. Then test yourself in **Explain it back**."""

EXPLAIN_BACK_INTRO = """You really understand an idea when you can explain it
without jargon. Choose who you are talking to, write a few sentences, and press
**Check my explanation**. The checker looks for the concept's key ideas and for
words your listener may not know. It matches words, so it works even while the
model is still loading."""

FRESH_HEADING = """#### 🧸 A fresh analogy from the chat model
*Written by the model just now. Models can get things wrong, so compare it with the explainer.*"""

REVIEW_HEADING = """#### 🤖 The model's comments
*A second opinion from the chat model, which can be wrong. The verdict above comes from the checker, not from the model.*"""


@contextmanager
def _shown_in_page():
    """Turn our documented ValueErrors (an unknown concept id) into messages Gradio shows."""
    try:
        yield
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from error


def _require_explanation(explanation: str, then: str) -> None:
    if not (explanation or "").strip():
        raise gr.Error(f"Write your explanation first, then {then}.")


def model_note(slot: ModelSlot) -> str:
    if slot.ready():
        return f"🤖 {slot.status()} The buttons that ask the model are on."
    return (
        f"🤖 {slot.status()} The buttons that ask the model stay off until it is ready; "
        "everything else on this tab works already."
    )


def model_controls(slot: ModelSlot) -> tuple:
    """Updates for the two model buttons, the note and the poll timer, which stops
    once there is nothing left to wait for (the model is ready or has failed)."""
    ready = slot.ready()
    return (
        gr.update(interactive=ready),
        gr.update(interactive=ready),
        model_note(slot),
        gr.update(active=slot.loading()),
    )


def _stream_from_model(slot: ModelSlot, messages: list[dict[str, str]], heading: str) -> Iterator[str]:
    """The model's answer under `heading`. An API call made while the model loads waits for it, as the
    chat does; in the page the buttons stay off until then."""
    try:
        for progress in slot.wait_for_model():
            yield f"🤖 {progress}"
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    from model_runtime import GenerationParams  # late, so the tab loads before the runtime does

    params = GenerationParams(**SAMPLING_DEFAULTS, max_new_tokens=220)  # the chat's defaults: no loops
    with closing(slot.reply(messages, params)) as updates:
        for reply, _ in updates:
            yield f"{heading}\n\n{reply}"


def fresh_analogy(slot: ModelSlot, concept_id: str) -> Iterator[str]:
    """Ask the playground's model for a fresh everyday analogy of a concept, as Markdown. Small models get
    facts wrong: the concept's explainer (eli5_explainer) is the checked text.

    Args:
        concept_id: docker, image-vs-container, compose, kubernetes, cloud, gradio-streamlit or ports.
    """
    with _shown_in_page():
        messages = fresh_analogy_messages(concept_id)
    yield from _stream_from_model(slot, messages, FRESH_HEADING)


def ask_model(slot: ModelSlot, concept_id: str, audience: str, explanation: str) -> Iterator[str]:
    """Ask the playground's model to review a learner's explanation of a concept, as Markdown comments.

    Args:
        concept_id: docker, image-vs-container, compose, kubernetes, cloud, gradio-streamlit or ports.
        audience: who the learner explains it to: "a friend who doesn't code" or "your manager".
        explanation: the learner's explanation, in their own words.
    """
    _require_explanation(explanation, "ask the model")
    with _shown_in_page():
        messages = review_messages(concept_id, audience, explanation)
    yield from _stream_from_model(slot, messages, REVIEW_HEADING)


def concept_explainer(concept_id: str) -> str:
    """A concept's explainer from the course, as Markdown: plain words, an everyday analogy, a Mermaid
    diagram, a common mix-up and its correction, then the technical words. The checked text, not a model's.

    Args:
        concept_id: docker, image-vs-container, compose, kubernetes, cloud, gradio-streamlit or ports.
    """
    try:
        return explainer_markdown(concept_id)
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def check(concept_id: str, explanation: str) -> dict:
    """Check a learner's explanation of a concept against the course: which key ideas it covers, which it
    misses, the mix-ups it repeats, the jargon it uses unexplained, and a verdict. Runs no model.

    Args:
        concept_id: docker, image-vs-container, compose, kubernetes, cloud, gradio-streamlit or ports.
        explanation: the learner's explanation, in their own words.
    """
    _require_explanation(explanation, "check it")
    with _shown_in_page():
        return check_explanation(concept_id, explanation or "")


def show_feedback(concept_id: str, result: dict) -> str:
    with _shown_in_page():
        return feedback_markdown(concept_id, result)


def show_concept(concept_id: str) -> tuple:
    """The new explainer, in view, with the answers about the previous concept cleared.

    The explainer's tab comes into view too: Mermaid cannot measure a diagram
    drawn in a hidden tab, and would leave an empty picture.
    """
    with _shown_in_page():
        return explainer_markdown(concept_id), "", "", None, "", gr.Tabs(selected="explainer")


def sample_answer(concept_id: str) -> str:
    with _shown_in_page():
        return get_concept(concept_id).sample_answer


def challenge(concept_id: str, audience: str) -> str:
    with _shown_in_page():
        return f"**Your challenge:** explain *{get_concept(concept_id).title}* to {audience}."


@dataclass
class Eli5Handles:
    """What another tab needs to open an explainer: the concept picker and the tab's parts."""

    concept: gr.Dropdown
    parts: gr.Tabs


def build_tab(slot: ModelSlot) -> Eli5Handles:
    first = concepts()[0]
    gr.Markdown(INTRO)
    # No custom values: typing only filters the list, and text that names no concept
    # is undone when the box loses focus, so the box and the page always agree.
    concept = gr.Dropdown(
        [(get_concept(concept_id).title, concept_id) for concept_id in concepts()],
        value=first,
        label="Concept",
    )
    note = gr.Markdown(model_note(slot))

    with gr.Tabs() as parts:
        with gr.Tab("Explainer", id="explainer"):
            eli5_button = gr.Button("🧸 Explain it like I'm 5: ask the model for a fresh analogy", interactive=slot.ready())
            fresh = gr.Markdown()
            explainer = gr.Markdown(explainer_markdown(first))

        with gr.Tab("Explain it back"):
            gr.Markdown(EXPLAIN_BACK_INTRO)
            audience = gr.Radio(AUDIENCES, value=AUDIENCES[0], label="Who are you explaining it to?")
            challenge_note = gr.Markdown(challenge(first, AUDIENCES[0]))
            explanation = gr.Textbox(
                label="Your explanation",
                lines=6,
                placeholder="Imagine they just asked you: so what is it, and why should I care?",
            )
            with gr.Row():
                check_button = gr.Button("Check my explanation", variant="primary")
                sample_button = gr.Button("Show a sample answer")
                ask_button = gr.Button("🤖 Ask the model too", interactive=slot.ready())
            feedback = gr.Markdown()
            with gr.Accordion("The checker's answer as JSON (what the API returns)", open=False):
                result = gr.JSON()
            comments = gr.Markdown()

        with gr.Tab("Glossary"):
            search = gr.Textbox(label="Search the glossary", placeholder="Try: " + ", ".join(GLOSSARY_EXAMPLES))
            entries = gr.Markdown(glossary_markdown(""))

    timer = gr.Timer(POLL_SECONDS, active=slot.loading())

    # One answer at a time: the model is shared with every other tab.
    model_events = {"concurrency_id": "eli5_model", "concurrency_limit": 1}
    eli5_event = eli5_button.click(
        tool("eli5_fresh_analogy", fresh_analogy, slot), concept, fresh, api_name="eli5_fresh_analogy", **model_events
    )
    ask_event = ask_button.click(
        tool("eli5_ask_model", ask_model, slot), [concept, audience, explanation], comments, api_name="eli5_ask_model", **model_events
    )
    # A new concept stops answers still streaming about the old one.
    concept.change(
        show_concept,
        concept,
        [explainer, fresh, feedback, result, comments, parts],
        cancels=[eli5_event, ask_event],
        api_visibility="private",
    )
    gr.on([concept.change, audience.change], challenge, [concept, audience], challenge_note, api_visibility="private")
    checked = check_button.click(check, [concept, explanation], result, api_visibility="private")
    checked.success(show_feedback, [concept, result], feedback, api_visibility="private")
    checked.failure(lambda: ("", None), None, [feedback, result], api_visibility="private")  # no stale verdict
    # The API takes any text as the concept id, unlike the dropdown, so that an
    # unknown id gets the checker's error naming the known ones.
    gr.api(tool("check_explanation", check), api_name="check_explanation")
    gr.api(tool("eli5_explainer", concept_explainer), api_name="eli5_explainer")
    sample_button.click(sample_answer, concept, explanation, api_visibility="private")
    search.change(glossary_markdown, search, entries, api_visibility="private")
    timer.tick(
        partial(model_controls, slot), None, [eli5_button, ask_button, note, timer], api_visibility="private"
    )
    return Eli5Handles(concept, parts)
