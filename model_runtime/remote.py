"""An engine somewhere else, reached over the OpenAI API, in place of the local one.

vLLM, llama-server, NIM, Ollama and this app itself all serve
/v1/chat/completions. RemoteEngine has what the tabs use of an Engine
(backend.ChatEngine), so the Chat tab and the ELI5 buttons work unchanged.
Time to first token and tokens/s are measured on this side, so they include
the network. It has no tokenizer of the remote model: it asks the engine's
/tokenize (vLLM's, which this app serves too), and where there is none it
counts tokens generously from the text, so that a prompt it sends fits.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Iterator

import openai

from .engine import EngineBusy, Event, Stats
from .loading import ModelLoadError
from .sampling import GenerationParams

DEFAULT_CONTEXT = 4096  # when the engine's /v1/models does not say
CHARS_PER_TOKEN = 3  # English runs near 4 characters a token: counting 3 overestimates, so a prompt fits
TOKENS_PER_MESSAGE = 8  # the chat template's role markers, generously
CONNECT_SECONDS = 10.0


class RemoteEngine:
    def __init__(self, url: str, model: str | None = None, api_key: str | None = None):
        """Ask `url` (ending in /v1) which models it serves; ModelLoadError, in words, if it cannot be reached."""
        self.url = url.rstrip("/")
        self.client = openai.OpenAI(base_url=self.url, api_key=api_key or "none", max_retries=0,
                                    timeout=openai.Timeout(None, connect=CONNECT_SECONDS))
        try:
            cards = self.client.models.list().data
        except openai.AuthenticationError:
            raise ModelLoadError(f"the engine at {self.url} refused the API key (give it with --backend-key)") from None
        except openai.APIError as exc:
            raise ModelLoadError(f"cannot reach the engine at {self.url}: {describe(exc)}") from None
        ids = [card.id for card in cards]
        if not ids or (model is not None and model not in ids):
            raise ModelLoadError(f"the engine at {self.url} serves {', '.join(ids) or 'no model'}, not {model!r}"
                                 if model else f"the engine at {self.url} lists no model")
        card = cards[ids.index(model or ids[0])]
        extra = card.model_extra or {}
        self.name = card.id
        self.tokenize_url = self.url.removesuffix("/v1") + "/tokenize"
        self.counts_exactly = True  # until the engine shows it has no /tokenize
        self.max_seq_len = int(extra.get("max_model_len") or extra.get("context_length") or DEFAULT_CONTEXT)
        self.last_error: str | None = None
        self._finished: collections.Counter[str] = collections.Counter()
        self._active = 0
        self._lock = threading.Lock()

    def stream(self, messages: list[dict], params: GenerationParams | None = None) -> Iterator[Event]:
        """The reply's text as it arrives, then an Event with the Stats; closing it closes the connection,
        which stops a server that watches for it (this app, vLLM, llama-server)."""
        params = params or GenerationParams()
        params.validate()
        return self._events(messages, params)

    def _events(self, messages: list[dict], params: GenerationParams) -> Iterator[Event]:
        started = time.perf_counter()
        first = last = None
        pieces, finish, usage = 0, None, None
        stats = Stats()
        with self._lock:
            self._active += 1
        try:
            with self._create(messages, params) as chunks:
                for chunk in chunks:
                    usage = chunk.usage or usage
                    if not chunk.choices:
                        continue
                    finish = chunk.choices[0].finish_reason or finish
                    text = chunk.choices[0].delta.content
                    if text:
                        last = time.perf_counter()
                        first = first or last
                        pieces += 1
                        yield Event(text)
            stats = self._stats(messages, usage, pieces, started, first, last, finish or "stop")
        except openai.RateLimitError as exc:
            stats = None  # not taken: not counted as finished
            raise EngineBusy(f"the engine at {self.url} is busy: {describe(exc)}") from None
        except openai.APIError as exc:
            stats = Stats(finish_reason="error", error=f"the engine at {self.url} failed: {describe(exc)}")
        except GeneratorExit:
            stats = Stats(finish_reason="cancelled")
            raise
        finally:
            with self._lock:
                self._active -= 1
                if stats is not None:
                    self._finished[stats.finish_reason or "cancelled"] += 1
                    self.last_error = stats.error or self.last_error
        yield Event("", stats)

    def _create(self, messages: list[dict], params: GenerationParams):
        # Sent even when 1 (off): a server's default may not be (this app's is the chat's 1.15).
        # vLLM's penalty counts the prompt's tokens too, where this engine's counts the reply's alone.
        extra = {"repetition_penalty": params.repetition_penalty, **({"top_k": params.top_k} if params.top_k else {})}
        return self.client.chat.completions.create(
            model=self.name, messages=messages, stream=True, stream_options={"include_usage": True},
            temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
            stop=params.stop or None, seed=params.seed, extra_body=extra,
        )

    def _stats(self, messages, usage, pieces, started, first, last, finish) -> Stats:
        """Usage as the engine reports it (or counted here), timings as seen from here."""
        completion = usage.completion_tokens if usage else pieces
        speed = (completion - 1) / (last - first) if first is not None and last > first and completion > 1 else None
        details = getattr(usage, "prompt_tokens_details", None)
        return Stats(
            prompt_tokens=usage.prompt_tokens if usage else self.count_tokens(messages),
            completion_tokens=completion,
            time_to_first_token_s=first - started if first is not None else None,
            decode_tokens_per_s=speed,
            finish_reason=finish,
            cached_prompt_tokens=(details.cached_tokens or 0) if details else 0,
        )

    def count_tokens(self, messages: list[dict]) -> int:
        if self.counts_exactly:
            try:
                answer = self.client.post(self.tokenize_url, body={"model": self.name, "messages": messages},
                                          cast_to=object, options={"timeout": CONNECT_SECONDS})
                return int(answer["count"])
            except openai.NotFoundError:
                self.counts_exactly = False  # llama-server's /tokenize takes text, Ollama has none
            except (openai.APIError, KeyError, TypeError, ValueError):
                pass  # estimated this once; a refused message is refused again by the chat itself
        return sum(len(m["content"]) // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE for m in messages)

    def info(self) -> dict:
        return {
            "model": self.name,
            "parameters": None,
            "device": self.url,
            "backend": "remote",
            "context_length": self.max_seq_len,
            "active_requests": self._active,
            "waiting_requests": 0,  # the remote engine keeps its own queue
            "finished_requests": dict(self._finished),
            "last_error": self.last_error,
            "token_counts": "exact, from the engine's /tokenize" if self.counts_exactly else
                            f"estimated, {CHARS_PER_TOKEN} characters a token (the engine has no /tokenize)",
        }

    def close(self) -> None:
        self.client.close()


def describe(exc: openai.APIError) -> str:
    """The reason in an engine's own words where it gave one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"no answer ({type(cause).__name__}: {cause})"
    return str(exc)
