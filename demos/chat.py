"""The Chat tab: a streaming chat with the playground's model, grounded in the course."""

from __future__ import annotations

import tempfile
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
from gradio.context import get_blocks_context

from demos.chat_export import as_json, as_markdown, file_stem
from demos.chat_logic import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    GROUNDED_STOPS,
    MIN_REPLY_TOKENS,
    SAMPLING_DEFAULTS,
    build_prompt,
    check_message,
    fit_to_context,
    grounded_turn,
    normalize_history,
    notes_that_fit,
    stats_line,
)
from demos.course.guard import Support, check_reply, left_out_note
from demos.course.knowledge import passages
from demos.course.retrieval import TOP_K, course_index
from demos.eli5.content import get_concept
from demos.model_slot import POLL_SECONDS, ModelSlot
from demos.tools import tool

SOURCES_TITLE = "📚 From the course"
LOADING_TITLE = "⏳ The model is loading"
NOT_SENT_TITLE = "⚠️ Not answered"
NOT_FROM_THE_COURSE = "This reply is the model's own: it was given no notes from the course. Small models get facts wrong, so check it."


def check_before_sending(slot: ModelSlot, message) -> dict:
    """The browser's check of a message before it joins the chat: a refused one stays in the box, with the reason.

    ChatInterface leaves its box locked when the reply function raises, so
    what can be checked from the message alone is checked here; respond()
    checks again for API callers, who get the reason as an error.
    """
    try:
        text = check_message(message)
        if slot.error is not None:
            raise ValueError(slot.status())
        if slot.ready():  # a message sent while the model loads waits for it
            engine = slot.engine
            fit_to_context("", [], text, engine.count_tokens, engine.max_seq_len - MIN_REPLY_TOKENS)
    except ValueError as exc:
        return gr.validate(False, str(exc))
    return gr.validate(True, "")


def find_sources(message: str, history: list[dict], grounded: bool) -> list:
    """The course's passages for the newest message, read with the learner's previous one."""
    if not grounded:
        return []
    earlier = next((turn["content"] for turn in reversed(history) if turn["role"] == "user"), "")
    return [hit.passage for hit in course_index().search(message, earlier)]


def as_sent(history: list[dict], count_tokens, budget: int) -> list[dict]:
    """The earlier turns as the model read them: each question with the notes it was answered from.

    Retrieval gives the same passages for the same turns, so the conversation
    the model read last time is the start of the one it reads now, and the
    engine prefills only the newest exchange (its slot keeps the rest).
    """
    sent = []
    for i, turn in enumerate(history):
        if turn["role"] == "user":
            sources = notes_that_fit(find_sources(turn["content"], history[:i], True), count_tokens, budget)
            turn = {"role": "user", "content": grounded_turn(turn["content"], sources)}
        sent.append(turn)
    return sent


def respond(slot: ModelSlot, message, history, system_prompt, temperature, top_p, max_new_tokens, repetition_penalty=SAMPLING_DEFAULTS["repetition_penalty"], grounded=True):
    """Stream a reply; yields (reply so far, stats line, the passages of the course it was given).

    A message sent while the model loads waits for it.
    """
    try:
        for progress in slot.wait_for_model():
            yield "", progress, []
        from model_runtime import GenerationParams  # after the wait: the loader may be importing it still

        max_new_tokens = int(max_new_tokens)
        engine = slot.engine  # wait_for_model() raised if there is none
        text = check_message(message)
        history = normalize_history(history)
        grounded = bool(grounded)
        sources = find_sources(text, history, grounded)
        budget = engine.max_seq_len - min(max_new_tokens, engine.max_seq_len // 2)
        limit = engine.max_seq_len - MIN_REPLY_TOKENS
        earlier = as_sent(history, engine.count_tokens, budget) if grounded else history
        prompt = build_prompt(system_prompt or "", earlier, text, sources, engine.count_tokens, budget, limit)
        params = GenerationParams(
            temperature=float(temperature),
            top_p=float(top_p),
            max_new_tokens=max_new_tokens,
            repetition_penalty=float(repetition_penalty),
            stop=list(GROUNDED_STOPS) if prompt.passages else [],
        )
        params.validate()
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    notices = []
    if grounded and not sources:
        notices.append("not covered by the course")
    elif grounded and not prompt.passages:
        notices.append("the course's notes did not fit the model's context window")
    if prompt.dropped_turns:
        notice = (
            f"The {prompt.dropped_turns} oldest messages no longer fit the model's context window "
            "and were left out of this reply."
        )
        gr.Warning(notice)
        notices.append(notice)
    # Off the course's ground only myths and mistakes are checked: there are no notes to back a sentence.
    support = Support(" ".join([text, *(passage.plain_text for passage in prompt.passages)])) if prompt.passages else None
    try:
        with closing(slot.reply(prompt.messages, params)) as updates:
            for reply, stats in updates:
                finished = stats is not None
                shown, sources = checked_against_the_course(reply, prompt.passages, support, finished, text) if grounded else (reply, [])
                yield shown, " · ".join([stats_line(stats), *notices]) if finished else "Generating…", sources
    except RuntimeError as exc:  # a full queue (EngineBusy: the API shares it), or an engine that stopped
        raise gr.Error(str(exc), print_exception=False) from None


def checked_against_the_course(reply: str, given: list, support: Support | None, finished: bool, question: str = "") -> tuple[str, list]:
    """The reply to `question` without sentences the course does not back, and the passages to show:
    those the model was given, and the mix-up that a dropped sentence contradicts."""
    checked = check_reply(reply, support, finished, question)
    wanted = {f"{concept.id}/mix-up" for concept in checked.corrected}
    mix_ups = [passage for passage in passages() if passage.id in wanted] if wanted else []
    note = left_out_note(checked) if finished else ""
    shown = "\n\n".join(filter(None, [checked.text.rstrip(), note]))
    return shown, given + [p for p in mix_ups if p not in given]


def sources_markdown(sources: list) -> str:
    """The course's own words that a reply was given, each under the name of where it comes from."""
    return "\n\n".join(f"**{passage.title}**\n\n{passage.text}" for passage in sources)


def reply_messages(reply: str, sources: list, grounded: bool) -> list:
    """The reply as the chat shows it: the model's words, then the course's, each in its own bubble."""
    messages = [gr.ChatMessage(content=reply)]
    if sources:
        messages.append(gr.ChatMessage(content=sources_markdown(sources), metadata={"title": SOURCES_TITLE}))
    elif grounded and reply:
        messages.append(gr.ChatMessage(content=NOT_FROM_THE_COURSE, metadata={"title": "🤖 Not from the course"}))
    return messages


def open_label(passage) -> str:
    return "🔧 Open the Ports tab's problem codes" if passage.tab == "ports" else f"📖 Open the {get_concept(passage.concept).title} explainer"


def source_buttons(sources: list) -> list:
    """One button per explainer the reply drew on; the rest hidden."""
    targets = list({(p.tab, p.concept): p for p in sources if p.tab == "ports" or p.concept}.values())
    return [
        gr.Button(open_label(targets[i]), visible=True) if i < len(targets) else gr.Button(visible=False)
        for i in range(TOP_K)
    ] + [[(p.tab, p.concept) for p in targets]]


def respond_in_chat(slot: ModelSlot, message, history, *settings):
    """respond() for the chat window: the course's passages in their own bubble, and buttons that open them.

    Nothing here raises: ChatInterface leaves its box locked when the reply
    function does. The loading progress and a refusal are notices in the chat
    (gradio's titled bubbles, which the conversation leaves out), so Stop
    while the model loads leaves the notice, not an empty bubble.
    """
    grounded = settings[-1]
    try:
        for progress in slot.wait_for_model():
            yield [notice(LOADING_TITLE, progress)], progress, *source_buttons([])
        for reply, stats, sources in respond(slot, message, history, *settings):
            yield reply_messages(reply, sources, grounded), stats, *source_buttons(sources)
    except (gr.Error, ValueError) as refusal:  # respond() says why in a gr.Error; a failed load in a ValueError
        yield [notice(NOT_SENT_TITLE, getattr(refusal, "message", str(refusal)))], "", *source_buttons([])


def notice(title: str, text: str) -> gr.ChatMessage:
    return gr.ChatMessage(content=text, metadata={"title": title})


def respond_to_api(slot: ModelSlot, message, system_prompt, temperature, top_p, max_new_tokens, repetition_penalty, grounded):
    """Ask the playground's small model about containers, Docker, Compose, Kubernetes, the cloud, Gradio or
    ports. It answers from the course's notes, drops sentences the course contradicts, and returns the reply,
    a stats line (time to first token, tokens/s) and the course passages it was given.

    Args:
        message: the question.
        system_prompt: instructions for the model; "" for the app's own.
        temperature: 0 for the likeliest words, up to 1.5; 0.3 is the app's default.
        top_p: 0.05 to 1; 0.9 is the app's default.
        max_new_tokens: the longest reply, in tokens (16 to 1024).
        repetition_penalty: 1 is off; 1.15 is the app's default.
        grounded: answer from the course's notes (True) or as the plain model (False).
    """
    settings = (system_prompt, temperature, top_p, max_new_tokens, repetition_penalty, grounded)
    for reply, stats, sources in respond(slot, message, [], *settings):
        yield reply, stats, [passage.to_dict() for passage in sources]


def export_files(slot: ModelSlot, history, stats: str, *settings) -> gr.File:
    """The chat as a Markdown and a JSON file, offered for download."""
    if not history:
        raise gr.Error("There is no chat to export yet.", print_exception=False)
    model = slot.engine.info()["model"] if slot.ready() else "the model (not loaded)"
    folder = Path(tempfile.mkdtemp(prefix="chat-export-"))
    stem = file_stem(history)
    markdown, record = folder / f"{stem}.md", folder / f"{stem}.json"
    markdown.write_text(as_markdown(history, list(settings), stats, model), encoding="utf-8")
    record.write_text(as_json(history, list(settings), stats, model), encoding="utf-8")
    return gr.File([str(markdown), str(record)], visible=True)


def events_stop_cancels(textbox: gr.Textbox) -> list[dict]:
    """The reply events that the chat's Stop cancels (submit, retry, an example…), which ChatInterface
    keeps to itself: read from the page's listeners, so that Clear and undo cancel the same ones."""
    page = get_blocks_context()
    stops = [f for f in page.fns.values() if f.cancels and any(t[0] == textbox._id and t[1] == "stop" for t in f.targets)]
    assert stops, "ChatInterface no longer sets a Stop listener with cancels: Clear would not stop a reply"
    return [page.fns[index].get_config() for stop in stops for index in stop.cancels]


@dataclass
class SourceLinks:
    """The buttons under the chat that open the explainers of the newest reply's sources."""

    buttons: list
    targets: gr.State  # [(tab, concept id or None)], one per shown button


def build_tab(slot: ModelSlot, concurrency: int = 8, grounded: bool = True) -> SourceLinks:
    status = gr.Markdown(slot.status(), elem_id="chat-status")
    stats = gr.Markdown("", elem_id="chat-stats")
    settings = [
        gr.Textbox(DEFAULT_SYSTEM_PROMPT, label="System prompt", lines=2, render=False),
        gr.Slider(0.0, 1.5, value=SAMPLING_DEFAULTS["temperature"], step=0.05, label="Temperature (0 = always the likeliest word)", render=False),
        gr.Slider(0.05, 1.0, value=SAMPLING_DEFAULTS["top_p"], step=0.05, label="Top-p", render=False),
        gr.Slider(16, 1024, value=DEFAULT_MAX_NEW_TOKENS, step=16, label="Max new tokens", render=False),
        gr.Slider(1.0, 2.0, value=SAMPLING_DEFAULTS["repetition_penalty"], step=0.05, label="Repetition penalty (1 = off; higher stops loops)", render=False),
        gr.Checkbox(grounded, label="Answer from the course (show its sources under each reply)", render=False),
    ]
    buttons = [gr.Button(visible=False, size="sm", render=False, elem_classes="chat-source-link") for _ in range(TOP_K)]
    targets = gr.State([])
    chat = gr.ChatInterface(
        partial(respond_in_chat, slot),
        validator=partial(check_before_sending, slot),
        chatbot=gr.Chatbot(height=460, label="Chat", show_label=False, elem_id="chatbot"),  # a shown label covers scrolled messages
        # Labelled, so that a refused message's reason reads "Message: …"; ChatInterface hides the label otherwise.
        textbox=gr.Textbox(label="Message", placeholder="Type a message…", elem_id="chat-input", scale=7, autofocus=True, submit_btn=True, stop_btn=True),
        additional_inputs=settings,  # render=False lets ChatInterface place them in its Settings accordion
        additional_inputs_accordion=gr.Accordion("Settings", open=False, render=False),
        additional_outputs=[stats, *buttons, targets],
        examples=[["Is a Docker container the same thing as a virtual machine?"], ["Why would I map port 7860?"]],
        cache_examples=False,
        api_name="chat_window",
        api_visibility="private",  # API callers use /chat below, which returns the sources as data
        concurrency_limit=concurrency,
        save_history=True,  # conversations are kept in the browser (localStorage): a reload or a restart keeps them
        fill_height=False,
        show_progress="hidden",  # the chatbot shows its own typing dots; a stopped reply would otherwise read "Error"
    )
    with gr.Row():
        for button in buttons:
            button.render()
    with gr.Row():
        export = gr.Button("⬇️ Export this chat (Markdown and JSON)", size="sm", elem_id="chat-export", scale=0)
    exported = gr.File(label="Exported chat", file_count="multiple", visible=False, elem_id="chat-exported")
    export.click(partial(export_files, slot), [chat.chatbot, stats, *settings], exported, api_visibility="private")
    # /chat: the message and the settings in, the reply, its stats line and its sources out.
    api_message = gr.Textbox(visible=False)
    api_outputs = [gr.Textbox(label="reply", visible=False), gr.Textbox(label="stats", visible=False), gr.JSON(label="sources", visible=False)]
    gr.Button(visible=False).click(
        tool("chat", respond_to_api, slot), [api_message, *settings], api_outputs, api_name="chat", concurrency_limit=concurrency
    )
    # Stop closes the reply's stream before its last event, which would have written the stats line.
    chat.textbox.stop(lambda: "Stopped.", None, stats, api_visibility="private", queue=False)
    replies = events_stop_cancels(chat.textbox)
    # Clear and undo stop a reply still streaming, as Stop does (ChatInterface's clear alone does not).
    restart = {"fn": lambda: ("", *source_buttons([])), "inputs": None, "outputs": [stats, *buttons, targets],
               "api_visibility": "private", "queue": False, "cancels": replies}
    chat.chatbot.undo(**restart)
    # An update the stopped reply had already sent can land after the clear and fill the chat again.
    chat.chatbot.clear(**restart).then(lambda: ([], ""), None, [chat.chatbot, stats], api_visibility="private", queue=False)
    timer = gr.Timer(POLL_SECONDS, active=slot.loading())
    timer.tick(
        lambda: (slot.status(), gr.Timer(active=slot.loading())),
        None,
        [status, timer],
        api_visibility="private",
        show_progress="hidden",
    )
    return SourceLinks(buttons, targets)
