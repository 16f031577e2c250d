"""The engine: one scheduler step decoding every active request together.

Requests wait in a queue, get a slot of the static KV cache, are prefilled
a chunk at a time between decode steps (so a long prompt delays the others by
one chunk a step, not by its whole prefill), then advance one token per step
in a shared batch (continuous batching). A request may advance by several
tokens a step: tokens guessed from its own prompt and reply (speculate.py)
are checked in rows of its own, where they are worth the rows, and those the
model agrees with are kept. A cancelled
request leaves before the next step and its slot is free again.

A thread of the engine's own runs the steps. With background=False there is
none: whoever reads a stream runs the same step until its next event comes,
for hosts that lend the GPU only for the duration of a call (ZeroGPU
Spaces), where a long-lived thread has no GPU to run on.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import torch

from .backend import Backend
from .detokenize import IncrementalText
from .sampling import Choices, GenerationParams, choose_and_mark, keep_or_replace, make_generator, probabilities
from .speculate import LONGEST, Drafter, plan

ROLES = ("system", "user", "assistant")


class EngineBusy(RuntimeError):
    """The queue is full: the request was not taken, and may be sent again later."""


@dataclass
class Stats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float | None = None
    decode_tokens_per_s: float | None = None
    finish_reason: str | None = None  # "stop", "length", "cancelled" or "error"
    error: str | None = None
    cached_prompt_tokens: int = 0  # the prompt's start, found in the slot's cache and not prefilled again
    drafted_tokens: int = 0  # guessed by prompt lookup and checked (speculate.py)
    accepted_tokens: int = 0  # of those, the ones the model agreed with


@dataclass
class Event:
    text: str = ""  # text decoded since the previous event
    stats: Stats | None = None  # set on the last event of a stream only


@dataclass
class Completion:
    text: str
    stats: Stats
    token_ids: list[int]


@dataclass
class Request:
    id: int
    prompt_ids: list[int]
    params: GenerationParams
    text: IncrementalText
    generator: torch.Generator
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)
    slot: int = -1
    reused: int = 0  # prompt tokens whose KV the slot already held from an earlier request
    prefilled: int = 0  # prompt tokens already in the cache
    output_ids: list[int] = field(default_factory=list)
    drafter: Drafter | None = None  # where the backend checks drafts
    drafted: int = 0
    accepted: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None

    @property
    def decoding(self) -> bool:
        return self.prefilled == len(self.prompt_ids)

    @property
    def position(self) -> int:
        """Cache position of the newest token, the one the next step feeds in."""
        return len(self.prompt_ids) + len(self.output_ids) - 1

    def written(self) -> list[int]:
        """The tokens whose keys and values are in the slot: the prompt prefilled so far, then
        every output token but the newest, which has not been fed back yet."""
        return (self.prompt_ids + self.output_ids)[: self.prefilled + max(len(self.output_ids) - 1, 0)]


class Stream:
    """The events of one request. Closing it (or Engine.cancel) stops its decoding."""

    def __init__(self, engine: "Engine", request: Request):
        self._engine, self._request = engine, request
        self.id = request.id
        self.stats: Stats | None = None

    @property
    def token_ids(self) -> list[int]:
        """The ids generated so far (complete once the last event has been read)."""
        return list(self._request.output_ids)

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Event:
        if self.stats is not None:
            raise StopIteration
        while not self._engine.background and self._request.events.empty():
            self._engine.step()  # a finished request always has its last event, so this ends
        event = self._request.events.get()
        if event.stats is not None:
            self.stats = event.stats
        return event

    def close(self) -> None:
        if self.stats is None:
            self._engine.cancel(self)

    def __del__(self) -> None:
        self.close()


class Engine:
    prefill_chunk = 256  # prompt tokens per step: bounds the pause a new prompt causes the others
    draft_rows = 16  # drafted rows a decode step may add to its one row per request (docs/PERFORMANCE.md)

    def __init__(self, backend: Backend, tokenizer, *, facts: ModelFacts, background: bool = True,
                 reuse_prefixes: bool = True, speculate: bool = True, max_waiting: int | None = None):
        """max_waiting: requests that may wait while every slot is taken; one more raises EngineBusy (None: no limit)."""
        self.backend, self.tokenizer, self.facts, self.name = backend, tokenizer, facts, facts.name
        self.max_batch, self.max_seq_len, self.device = backend.max_batch, backend.max_seq_len, backend.device
        # Which vocabulary ids each slot's reply holds, for the repetition penalty.
        self._seen = torch.zeros(self.max_batch, backend.vocab_size, dtype=torch.bool, device=self.device)
        backend.bind(self._seen)
        # The latest conversations' templating: counting a prompt, then sending it, templates it once.
        self._template = functools.lru_cache(maxsize=64)(self._apply_template)
        self._ids = itertools.count(1)
        self._waiting: collections.deque[Request] = collections.deque()
        self.max_waiting = max_waiting
        self._active: dict[int, Request] = {}  # slot -> request
        self._live: dict[int, Request] = {}  # id -> request, until its last event
        self._finished: collections.Counter[str] = collections.Counter()  # by finish reason
        # What each slot's KV cache holds once its request has ended, and when that was: a later
        # prompt that starts the same way (the next turn of a conversation) prefills only the rest.
        self.reuse_prefixes = reuse_prefixes
        self._cached: list[list[int]] = [[] for _ in range(self.max_batch)]
        self._ended_at = [0] * self.max_batch
        self._ends = itertools.count(1)
        self._reused_tokens = 0
        # Prompt lookup, where the backend checks drafts row by row exactly.
        self.why_no_drafts = backend.info.why_no_drafts if speculate else "turned off (speculate=False)"
        self._drafts = collections.Counter()  # "drafted" and "accepted" tokens, over every request
        self._wake = threading.Condition(threading.RLock())
        self._closed = False
        self.stopped_by: str | None = None  # why the scheduler thread died, if it did
        self._step_faults = 0  # steps that raised; only their requests ended
        self._fault_in: int | None = None  # steps until an injected fault (inject_fault)
        self.background = background
        # Inline, callers take turns: a step holds the lock throughout, so a cancel waits for
        # it. The engine's thread steps alone and holds the lock only to pick its batch.
        self._stepping = contextlib.nullcontext() if background else self._wake
        if background:
            self._thread = threading.Thread(target=self._run, name="model-runtime-scheduler", daemon=True)
            self._thread.start()

    # -- public API ---------------------------------------------------------

    def stream(self, messages: list[dict], params: GenerationParams | None = None) -> Stream:
        """Start a reply to `messages`; iterate the returned Stream for its events.

        Bad requests raise ValueError here, before anything is queued, and a
        full queue raises EngineBusy.
        """
        params = params or GenerationParams()
        params.validate()
        prompt_ids = self.encode(messages)
        if len(prompt_ids) >= self.max_seq_len:
            raise ValueError(
                f"the conversation is {len(prompt_ids)} tokens long and the context holds "
                f"{self.max_seq_len}; shorten it or start a new one"
            )
        request = Request(
            id=next(self._ids),
            prompt_ids=prompt_ids,
            params=params,
            text=IncrementalText(self.tokenizer, params.stop),
            generator=make_generator(params.seed),
        )
        with self._wake:
            if self.stopped_by is not None:
                raise RuntimeError(f"the model stopped working ({self.stopped_by}); restart the app")
            if self._closed:
                raise RuntimeError("the engine is closed")
            if self.max_waiting is not None and len(self._waiting) + len(self._active) >= self.max_batch + self.max_waiting:
                raise EngineBusy(f"the server is busy: {len(self._waiting)} requests are already waiting; try again shortly")
            self._waiting.append(request)
            self._live[request.id] = request
            self._wake.notify()
        return Stream(self, request)

    def complete(self, messages: list[dict], params: GenerationParams | None = None) -> Completion:
        stream = self.stream(messages, params)
        text = "".join(event.text for event in stream)
        return Completion(text, stream.stats, stream.token_ids)

    def cancel(self, stream: Stream | int) -> None:
        """Stop a request: it leaves the batch before the next decode step."""
        request_id = stream.id if isinstance(stream, Stream) else stream
        with self._wake:
            request = self._live.get(request_id)
            if request is not None:
                request.cancelled.set()
                if not self.background:  # a reader may never step again: free its slot now
                    with self._stepping:
                        self._drop_cancelled()
                self._wake.notify_all()

    def encode(self, messages: list[dict]) -> list[int]:
        """The conversation's prompt ids, ready for the reply. A tab that counted them to fit the
        context and then sends the same messages has them templated once (see _template)."""
        check_messages(messages)
        return list(self._template(tuple((m["role"], m["content"]) for m in messages)))

    def _apply_template(self, turns: tuple[tuple[str, str], ...]) -> tuple[int, ...]:
        messages = [{"role": role, "content": content} for role, content in turns]
        return tuple(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def info(self) -> dict:
        backend = self.backend.info
        return {
            "model": self.name,
            "parameters": self.facts.parameters,
            "device": str(self.device),
            "context_length": self.max_seq_len,
            "model_context_length": self.facts.context_length,
            "max_batch": self.max_batch,
            "active_requests": len(self._active),
            "waiting_requests": len(self._waiting),
            "max_waiting": self.max_waiting,
            # What the active requests hold of the KV cache, as llama-server's kv_cache_tokens counts it.
            "kv_cache_tokens": sum(len(r.written()) for r in list(self._active.values())),
            "kv_cache_capacity": self.max_batch * self.max_seq_len,
            "finished_requests": dict(self._finished),
            "scheduler": f"{'background thread' if self.background else 'in the caller'}, continuous batching"
                         + (f"; stopped: {self.stopped_by}" if self.stopped_by else ""),
            "stopped_by": self.stopped_by,
            "step_faults": self._step_faults,
            "prefix_reuse": self.reuse_prefixes,
            "reused_prompt_tokens": self._reused_tokens,
            "speculation": (f"prompt lookup: up to {LONGEST} drafted tokens a request a step"
                            if self.why_no_drafts is None else f"off: {self.why_no_drafts}"),
            "drafted_tokens": self._drafts["drafted"],
            "accepted_tokens": self._drafts["accepted"],
            "backend": backend.name,
            "dtype": backend.dtype,
            "quantization": backend.quantization,
            "cuda_graphs": backend.cuda_graphs,
            "why_not_faster": backend.why_not_faster,
            **({"graph_batch_sizes": list(backend.graph_batch_sizes)} if backend.cuda_graphs else {}),
        }

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            if not self.background:
                for request in list(self._live.values()):
                    self._finish(request, "cancelled")
        if self.background:
            self._thread.join(timeout=10)

    # -- scheduler ------------------------------------------------------------

    def step(self) -> None:
        """One scheduler step in the calling thread: drop cancelled requests, give waiting
        ones free slots, then prefill a chunk of the oldest new prompt and decode one token
        for every other active request. The engine's thread runs it in a loop; with
        background=False, reading a stream runs it."""
        with self._stepping:
            with self._wake:
                self._drop_cancelled()
                self._admit_waiting()
                batch = [self._active[slot] for slot in sorted(self._active)]
            prefilling = min((r for r in batch if not r.decoding), key=lambda r: r.id, default=None)
            try:
                self._maybe_fault(batch)
                with torch.inference_mode():
                    if prefilling is not None:
                        self._prefill(prefilling)
                    decoding = [r for r in batch if r.decoding and r is not prefilling]
                    if decoding:
                        self._decode_step(decoding)
            except Exception as exc:  # one bad step must not take the server down
                self._step_faults += 1
                self._fail(batch, exc)

    def inject_fault(self, after_steps: int = 0) -> None:
        """Make the step after `after_steps` more steps with requests in them raise, as a broken kernel
        would: for tests and the chaos load run (scripts/chaos_test.py)."""
        self._fault_in = after_steps

    def _maybe_fault(self, batch: list[Request]) -> None:
        if self._fault_in is None or not batch:
            return
        if self._fault_in > 0:
            self._fault_in -= 1
            return
        self._fault_in = None
        raise RuntimeError("an injected fault in this step")

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not (self._closed or self._waiting or self._active):
                        self._wake.wait()
                    if self._closed:
                        break
                self.step()
        except Exception as exc:  # the scheduler itself broke: say so to every reader, now and later
            self.stopped_by = f"{type(exc).__name__}: {exc}"
            logging.getLogger(__name__).exception("the engine's scheduler stopped")
            with self._wake:
                for request in list(self._live.values()):
                    self._finish(request, "error", f"the model stopped working ({self.stopped_by})")
            return
        for request in list(self._active.values()) + list(self._waiting):
            self._finish(request, "cancelled")

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._waiting if r.cancelled.is_set()]:
            self._waiting.remove(request)
            self._finish(request, "cancelled")
        for request in [r for r in self._active.values() if r.cancelled.is_set()]:
            self._finish(request, "cancelled")

    def _admit_waiting(self) -> None:
        """Give waiting requests, oldest first, a free slot each."""
        while self._waiting and len(self._active) < self.max_batch:
            self._take_slot(self._waiting.popleft())

    def _take_slot(self, request: Request) -> None:
        """The free slot whose cache starts as the prompt does, less what taking it overwrites;
        else the one unused longest. The shared start is not prefilled again."""
        prompt, free = request.prompt_ids, sorted(set(range(self.max_batch)) - self._active.keys())
        slot, shared = free[0], 0  # without reuse, the lowest: a CUDA graph's bucket follows the highest slot
        if self.reuse_prefixes:
            starts = {s: shared_start(self._cached[s], prompt) for s in free}
            slot = max(free, key=lambda s: (2 * starts[s] - len(self._cached[s]), -self._ended_at[s], -s))
            shared = starts[slot]
        # The prompt's last token is always fed again: its logits choose the first token.
        request.reused = request.prefilled = min(shared, len(prompt) - 1)
        self._reused_tokens += request.reused
        request.slot, self._cached[slot] = slot, []  # known again when the request ends
        self._active[slot] = request

    def _prefill(self, request: Request) -> None:
        """Put the next chunk of the prompt in the cache; after the last one, choose the first token."""
        start = request.prefilled
        end = min(start + self.prefill_chunk, len(request.prompt_ids))
        tokens = torch.tensor([request.prompt_ids[start:end]])
        positions = torch.arange(start, end)[None]
        if start == request.reused:  # the repetition penalty's memory of this slot starts with this reply
            self._seen[request.slot].zero_()
        logits = self.backend.prefill(tokens, positions, request.slot)
        request.prefilled = end
        if request.decoding:
            choices = Choices.draw([(request.params, request.generator)])
            self._accept(request, choose_and_mark(logits, choices, self._seen, [request.slot])[0])

    def _decode_step(self, batch: list[Request]) -> None:
        drafts = self._draft(batch)
        if any(drafts):
            return self._check_drafts(batch, drafts)
        # The step's inputs stay on the host: the eager step moves them to the device,
        # a CUDA graph stages them all in one copy.
        tokens = torch.tensor([[r.output_ids[-1]] for r in batch])
        positions = torch.tensor([[r.position] for r in batch])
        choices = Choices.draw([(r.params, r.generator) for r in batch])
        ids = self.backend.decode(tokens, positions, [r.slot for r in batch], choices)
        for request, token in zip(batch, ids, strict=True):
            self._accept(request, token)

    def _draft(self, batch: list[Request]) -> list[list[int]]:
        """Each request's drafted tokens for this step, where they are worth their rows (speculate.plan),
        within the step's row budget: a request's own next token always has its row."""
        if self.why_no_drafts is not None:
            return [[] for _ in batch]
        guesses = []
        for request in batch:
            request.drafter = request.drafter or Drafter(request.prompt_ids)
            room = min(LONGEST, request.params.max_new_tokens - len(request.output_ids),
                       self.max_seq_len - 1 - request.position)
            guesses.append((request.drafter.draft(request.output_ids, room), request.drafter.odds))
        return plan(len(batch), guesses, self.draft_rows)

    def _check_drafts(self, batch: list[Request], drafts: list[list[int]]) -> None:
        """One step over every request's newest token and its drafted ones. A request keeps its
        choices while they are its drafted tokens, and the first that is not. A greedy choice
        is the likeliest token, so a greedy reply is the one it would have been without drafts;
        a sampled one keeps a drafted token by speculative sampling's rule (keep_or_replace),
        which leaves each token's distribution as it was (though not a seed's reply: how much
        is drafted depends on the batch, see speculate.plan). A rejected draft's keys and values
        lie beyond the request's position, where no row reads, and the next step writes over them."""
        rows = [(request, i, token) for request, draft in zip(batch, drafts)
                for i, token in enumerate([request.output_ids[-1], *draft])]
        tokens = torch.tensor([[token] for _, _, token in rows])
        positions = torch.tensor([[request.position + i] for request, i, _ in rows])
        logits = self.backend.check(tokens, positions, [request.slot for request, _, _ in rows])
        # Most rows are greedy without a penalty: their choices need no seen tokens, so they are
        # taken in one argmax and marked together after the step.
        likeliest, marks, start = logits.argmax(-1).tolist(), [], 0
        for request, draft in zip(batch, drafts, strict=True):
            accepted, plain = 0, request.params.temperature == 0 and request.params.repetition_penalty == 1
            for i in range(start, start + len(draft) + 1):
                if plain:
                    token = likeliest[i]
                    marks.append((request.slot, token))
                else:
                    token = self._choose(request, logits[i:i + 1], draft[accepted] if accepted < len(draft) else None)
                self._accept(request, token)
                agreed = accepted < len(draft) and token == draft[accepted]
                accepted += agreed
                if not agreed or request.id not in self._live:
                    break
            start += len(draft) + 1
            if draft:
                request.drafter.checked(len(draft), accepted)
                request.drafted += len(draft)
                request.accepted += accepted
                self._drafts.update(drafted=len(draft), accepted=accepted)
        if marks:
            slots, tokens = zip(*marks)
            self._seen[list(slots), list(tokens)] = True

    def _choose(self, request: Request, logits: torch.Tensor, drafted: int | None) -> int:
        """The request's token from one row of logits [1, vocab], marked as seen; `drafted` is
        the token this row was given as a guess, if any."""
        choices = Choices.draw([(request.params, request.generator)])
        if drafted is None or request.params.temperature == 0:
            return choose_and_mark(logits, choices, self._seen, [request.slot])[0]
        probs = probabilities(logits, choices, self._seen[[request.slot]])[0]
        token = keep_or_replace(probs, drafted, float(choices.settings[4, 0]), float(torch.rand((), generator=request.generator)))
        self._seen[request.slot, token] = True
        return token

    def _accept(self, request: Request, token: int) -> None:
        """Append one token to `request`, hand out its text, and end it if done."""
        now = time.perf_counter()
        request.first_token_at = request.first_token_at or now
        request.last_token_at = now
        request.output_ids.append(token)
        if token in self.facts.eos_ids:
            return self._finish(request, "stop")
        piece, hit_stop = request.text.add(token)
        if piece:
            request.events.put(Event(text=piece))
        if hit_stop:
            self._finish(request, "stop")
        elif len(request.output_ids) >= request.params.max_new_tokens or request.position + 1 >= self.max_seq_len:
            self._finish(request, "length")

    def _finish(self, request: Request, reason: str, error: str | None = None) -> None:
        with self._wake:
            if self._live.pop(request.id, None) is None:
                return  # already finished (a cancel racing the end of the reply)
            if self._active.get(request.slot) is request:
                del self._active[request.slot]
                # A failed step may have left anything in the cache.
                self._cached[request.slot] = request.written() if reason != "error" else []
                self._ended_at[request.slot] = next(self._ends)
            self._finished[reason] += 1
            self._wake.notify_all()
        tail = request.text.flush() if reason in ("stop", "length") else ""
        request.events.put(Event(text=tail, stats=self._stats(request, reason, error)))

    def _stats(self, request: Request, reason: str, error: str | None) -> Stats:
        produced = len(request.output_ids)
        ttft = request.first_token_at - request.submitted if request.first_token_at else None
        decode_rate = None
        if produced > 1 and request.last_token_at > request.first_token_at:
            decode_rate = (produced - 1) / (request.last_token_at - request.first_token_at)
        return Stats(len(request.prompt_ids), produced, ttft, decode_rate, reason, error, request.reused,
                     request.drafted, request.accepted)

    def _fail(self, requests: list[Request], exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        for request in requests:
            self._finish(request, "error", message)


def shared_start(a: list[int], b: list[int]) -> int:
    """How many tokens a and b share from their start."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"message {i} needs a role of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"message {i} needs its content as a string")


@dataclass(frozen=True)
class ModelFacts:
    """What the engine keeps of the checkpoint it was built from (not its weights: the backend holds those)."""

    name: str
    folder: str  # where its weights and tokenizer were read from
    parameters: int
    context_length: int | None  # the model's own, which the engine's KV cache may cap
    eos_ids: frozenset[int]

    @classmethod
    def of(cls, hf_model, tokenizer, name: str) -> "ModelFacts":
        ids = hf_model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        context = getattr(hf_model.config, "max_position_embeddings", None)
        return cls(name, hf_model.name_or_path, sum(p.numel() for p in hf_model.parameters()), context, frozenset(ids))
