"""The Chat tab: a streaming chat with the playground's model."""

from __future__ import annotations

import time
from contextlib import closing
from functools import partial

import gradio as gr

from demos.chat_logic import (
    DEFAULT_SYSTEM_PROMPT,
    MIN_REPLY_TOKENS,
    check_message,
    fit_to_context,
    normalize_history,
    stats_line,
)
from demos.model_slot import ModelSlot

FLUSH_SECONDS = 0.08  # send text to the browser in small batches, not once per token
POLL_SECONDS = 1.0


def check_before_sending(slot: ModelSlot, message) -> dict:
    """The browser's check of a message before it joins the chat: a refused one stays in the box, with the reason.

    ChatInterface leaves its box locked when the reply function raises, so
    what can be checked from the message alone is checked here; respond()
    checks again for API callers, who get the reason as an error.
    """
    try:
        text = check_message(message)
        if not slot.loading():  # a message sent while the model loads waits for it
            engine = ready_engine(slot)
            fit_to_context("", [], text, engine.count_tokens, engine.max_seq_len - MIN_REPLY_TOKENS)
    except ValueError as exc:
        return gr.validate(False, str(exc))
    return gr.validate(True, "")


def ready_engine(slot: ModelSlot):
    if slot.engine is None:
        raise ValueError(slot.status())
    return slot.engine


def respond(slot: ModelSlot, message, history, system_prompt, temperature, top_p, max_new_tokens):
    """Stream a reply; yields (reply so far, stats line). A message sent while the model loads waits for it."""
    while slot.loading():
        yield "", slot.status()
        time.sleep(POLL_SECONDS)
    from model_runtime import GenerationParams  # after the wait: the loader may be importing it still
    try:
        max_new_tokens = int(max_new_tokens)
        engine = ready_engine(slot)
        text = check_message(message)
        budget = engine.max_seq_len - min(max_new_tokens, engine.max_seq_len // 2)
        limit = engine.max_seq_len - MIN_REPLY_TOKENS
        prompt = fit_to_context(system_prompt or "", normalize_history(history), text, engine.count_tokens, budget, limit)
        params = GenerationParams(temperature=float(temperature), top_p=float(top_p), max_new_tokens=max_new_tokens)
        params.validate()
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    notice = ""
    if prompt.dropped_turns:
        notice = (
            f"The {prompt.dropped_turns} oldest messages no longer fit the model's context window "
            "and were left out of this reply."
        )
        gr.Warning(notice)
    reply, sent_at = "", 0.0
    # Closing the stream (Stop, a retry, a closed tab) stops the model computing.
    with closing(slot.stream(prompt.messages, params)) as events:
        for event in events:
            reply += event.text
            if event.stats is not None:
                yield reply, " · ".join(filter(None, [stats_line(event.stats), notice]))
            elif time.monotonic() - sent_at >= FLUSH_SECONDS and reply:
                sent_at = time.monotonic()
                yield reply, "Generating…"


def build_tab(slot: ModelSlot, concurrency: int = 8) -> None:
    status = gr.Markdown(slot.status(), elem_id="chat-status")
    stats = gr.Markdown("", elem_id="chat-stats")
    chat = gr.ChatInterface(
        partial(respond, slot),
        validator=partial(check_before_sending, slot),
        chatbot=gr.Chatbot(height=460, label="Chat", show_label=False, elem_id="chatbot"),  # a shown label covers scrolled messages
        # Labelled, so that a refused message's reason reads "Message: …"; ChatInterface hides the label otherwise.
        textbox=gr.Textbox(label="Message", placeholder="Type a message…", elem_id="chat-input", scale=7, autofocus=True, submit_btn=True, stop_btn=True),
        # render=False lets ChatInterface place these in its Settings accordion.
        additional_inputs=[
            gr.Textbox(DEFAULT_SYSTEM_PROMPT, label="System prompt", lines=2, render=False),
            gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature (0 = always the likeliest word)", render=False),
            gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p", render=False),
            gr.Slider(16, 1024, value=256, step=16, label="Max new tokens", render=False),
        ],
        additional_inputs_accordion=gr.Accordion("Settings", open=False, render=False),
        additional_outputs=[stats],
        examples=[["What is a Docker container, in one paragraph?"], ["Why would I map port 7860?"]],
        cache_examples=False,
        api_name="chat",
        concurrency_limit=concurrency,
        fill_height=False,
        show_progress="hidden",  # the chatbot shows its own typing dots; a stopped reply would otherwise read "Error"
    )
    # Stop closes the reply's stream before its last event, which would have written the stats line.
    chat.textbox.stop(lambda: "Stopped.", None, stats, api_visibility="private", queue=False)
    for starts_over in (chat.chatbot.clear, chat.chatbot.undo):
        starts_over(lambda: "", None, stats, api_visibility="private", queue=False)
    timer = gr.Timer(POLL_SECONDS, active=slot.loading())
    timer.tick(
        lambda: (slot.status(), gr.Timer(active=slot.loading())),
        None,
        [status, timer],
        api_visibility="private",
        show_progress="hidden",
    )
