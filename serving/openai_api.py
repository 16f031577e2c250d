"""/v1/chat/completions and /v1/models: the app's engine through the OpenAI API (and vLLM's /tokenize).

The routes live on the app's own port and reach the model through the same
model slot as the tabs, so an API request joins the engine's batch and
queue beside the browser's replies, and a full queue answers 429 for both.
Refusals use OpenAI's error shape, so the official client raises its own
typed errors (BadRequestError, NotFoundError, RateLimitError…).

Like llama-server, vLLM and Ollama, this is the plain model: a client brings
its own system prompt. The course's notes and their check are the Chat tab's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from demos.chat_logic import DEFAULT_MAX_NEW_TOKENS, MAX_MESSAGE_CHARS, SAMPLING_DEFAULTS, clean

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 4  # as OpenAI's API


class ApiError(Exception):
    """A refusal, in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.code, self.param, self.kind = status, code, param, kind

    def response(self) -> JSONResponse:
        body = {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]
    params: object  # model_runtime.GenerationParams
    stream: bool
    include_usage: bool


def parse(body) -> ChatRequest:
    """A /v1/chat/completions body, checked field by field; ApiError names the field at fault."""
    from model_runtime import GenerationParams

    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: one of the ids /v1/models lists", param="model")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported: one reply per request", param="n")
    if body.get("tools") or body.get("functions"):
        raise ApiError(400, "tools and functions are not supported by this server", param="tools")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stream_options = body.get("stream_options") or {}
    params = GenerationParams(
        temperature=number(body, "temperature", SAMPLING_DEFAULTS["temperature"]),
        top_p=number(body, "top_p", SAMPLING_DEFAULTS["top_p"]),
        max_new_tokens=integer(max_tokens, "max_tokens") if max_tokens is not None else DEFAULT_MAX_NEW_TOKENS,
        repetition_penalty=number(body, "repetition_penalty", SAMPLING_DEFAULTS["repetition_penalty"]),
        stop=stop_strings(body.get("stop")),
        seed=integer(body["seed"], "seed") if body.get("seed") is not None else None,
    )
    try:
        params.validate()
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return ChatRequest(model, messages_of(body.get("messages")), params,
                       bool(body.get("stream")), bool(isinstance(stream_options, dict) and stream_options.get("include_usage")))


def number(body: dict, name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"{name} must be a number", param=name)
    return float(value)


def integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer", param=name)
    return value


def stop_strings(stop) -> list[str]:
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, f"stop must be a string or a list of at most {MAX_STOP_STRINGS} non-empty strings", param="stop")
    return stops


def messages_of(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    result = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role")
        text = clean(content_of(message.get("content"), where))
        if len(text) > MAX_MESSAGE_CHARS:
            raise ApiError(400, f"{where} is {len(text):,} characters long; this server takes at most "
                           f"{MAX_MESSAGE_CHARS:,} a message", code="string_above_max_length", param=f"{where}.content")
        result.append({"role": ROLES[message["role"]], "content": text})
    if result[-1]["role"] == "assistant":
        raise ApiError(400, "the last message must be the user's (or a system message), not the assistant's",
                       param=f"messages[{len(result) - 1}].role")
    return result


def content_of(content, where: str) -> str:
    """A string, or a list of text parts as newer clients send; images and audio are refused."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return "".join(part["text"] for part in content)
    raise ApiError(400, f"{where}.content must be a string or a list of text parts; this model reads text only",
                   param=f"{where}.content")


def timings(stats) -> dict:
    """llama-server's timings object: prefill (to the first token) and decode, in ms and tokens/s."""
    prompt_ms = (stats.time_to_first_token_s or 0.0) * 1000
    prefilled = stats.prompt_tokens - stats.cached_prompt_tokens
    speed = stats.decode_tokens_per_s
    predicted_ms = (stats.completion_tokens - 1) / speed * 1000 if speed else 0.0
    return {
        "cache_n": stats.cached_prompt_tokens,
        "prompt_n": prefilled,
        "prompt_ms": round(prompt_ms, 2),
        "prompt_per_second": round(prefilled / prompt_ms * 1000, 2) if prompt_ms else None,
        "predicted_n": stats.completion_tokens,
        "predicted_ms": round(predicted_ms, 2),
        "predicted_per_second": round(speed, 2) if speed else None,
        "time_to_first_token_ms": round(prompt_ms, 2),
    }


def usage(stats) -> dict:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.cached_prompt_tokens},
    }


def failure(stats) -> ApiError:
    return ApiError(500, f"the model failed while replying: {stats.error}", code="engine_error", kind="server_error")


def router(slot) -> APIRouter:
    """The /v1 routes, and vLLM's /tokenize, over a demos.model_slot.ModelSlot."""
    api = APIRouter()

    async def engine():
        """The loaded engine; a request sent while the model loads waits for it, as the tabs' do."""
        while slot.loading():
            await asyncio.sleep(0.25)
        if slot.engine is None:
            raise ApiError(503, slot.status(), code="model_not_loaded", kind="server_error")
        return slot.engine

    # An ApiError raised here becomes its response through the app's exception handler (serving.routes).
    @api.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card((await engine()).info())]}

    @api.post("/tokenize")
    async def tokenize(request: Request):
        """vLLM's /tokenize for chat messages: what the prompt costs, so that a copy of this app
        using this one as its backend fits conversations to the context exactly."""
        body = await json_body(request)
        messages = messages_of(body.get("messages") if isinstance(body, dict) else None)
        running = await engine()
        count = await anyio.to_thread.run_sync(running.count_tokens, messages)
        return {"count": count, "max_model_len": running.max_seq_len}

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        from model_runtime import EngineBusy

        wanted = parse(await json_body(request))
        try:
            running = await engine()
            name = running.info()["model"]
            if wanted.model != name:
                raise ApiError(404, f"the model {wanted.model!r} does not exist here; this server runs {name!r}",
                               code="model_not_found", param="model")
            await anyio.to_thread.run_sync(fit_reply, running, wanted)
            events = slot.stream(wanted.messages, wanted.params)
            # The first event is read before answering, so that a full queue or a refusal gets its own status.
            first = await anyio.to_thread.run_sync(next, events)
        except EngineBusy as exc:
            return ApiError(429, str(exc), code="server_busy", kind="rate_limit_error").response()
        except RuntimeError as exc:  # the engine stopped working
            return ApiError(503, str(exc), code="engine_stopped", kind="server_error").response()
        except ValueError as exc:
            return ApiError(400, str(exc), code="context_length_exceeded" if "context" in str(exc) else None).response()
        reply = Reply(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), name)
        if wanted.stream:
            return StreamingResponse(reply.chunks(first, events, wanted.include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        text, stats = await anyio.to_thread.run_sync(read_all, first, events)
        if stats.finish_reason == "error":
            return failure(stats).response()
        return reply.whole(text, stats)

    return api


async def json_body(request: Request):
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


def model_card(info: dict) -> dict:
    return {"id": info["model"], "object": "model", "created": 0, "owned_by": "deploy-playground",
            "max_model_len": info["context_length"]}  # vLLM's name for the context length, which clients read


def fit_reply(engine, wanted: ChatRequest) -> None:
    """Refuse a prompt the context cannot hold; trim max_tokens to the room left, as llama-server does
    (the reply then ends with finish_reason "length")."""
    prompt = engine.count_tokens(wanted.messages)
    room = engine.max_seq_len - prompt
    if room < 1:
        raise ApiError(400, f"the messages are {prompt} tokens long and the model's context holds {engine.max_seq_len}; "
                       "shorten them", code="context_length_exceeded", param="messages")
    wanted.params.max_new_tokens = min(wanted.params.max_new_tokens, room)


def read_all(first, events) -> tuple[str, object]:
    parts = [first.text]
    stats = first.stats
    for event in events:
        parts.append(event.text)
        stats = event.stats or stats
    return "".join(parts), stats


@dataclass
class Reply:
    id: str
    created: int
    model: str

    def whole(self, text: str, stats) -> dict:
        message = {"role": "assistant", "content": text}
        return {**self._head("chat.completion"), "choices": [{"index": 0, "message": message, "finish_reason": stats.finish_reason}],
                "usage": usage(stats), "timings": timings(stats)}

    async def chunks(self, first, events, include_usage: bool):
        """Server-sent events: the role, the text as it comes, the finish reason, then usage if asked.
        A client that leaves closes this generator, and with it the engine's stream: the
        request leaves the batch before the next step."""
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            event = first
            while True:
                if event.text:
                    yield self._chunk({"content": event.text})
                if event.stats is not None:
                    break
                event = await anyio.to_thread.run_sync(next, events)
            stats = event.stats
            if stats.finish_reason == "error":
                yield sse({"error": {"message": str(failure(stats)), "type": "server_error", "code": "engine_error"}})
            else:
                yield self._chunk({}, stats.finish_reason)
            if include_usage:
                yield sse({**self._head("chat.completion.chunk"), "choices": [], "usage": usage(stats), "timings": timings(stats)})
            yield "data: [DONE]\n\n"
        finally:
            events.close()

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> str:
        return sse({**self._head("chat.completion.chunk"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
