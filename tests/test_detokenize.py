"""Token ids to text a piece at a time: the pieces add up to the whole decode, whatever splits a character."""

from __future__ import annotations

import pytest

from model_runtime.detokenize import IncrementalText
from tests.tiny_model import build_tokenizer

TEXT = "Ünïcödé and emoji 🚢 too: a container 🐳 packs an app, and 日本 is new to this tokenizer."


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def streamed(tokenizer, ids: list[int], stop: list[str]) -> tuple[list[str], bool]:
    text = IncrementalText(tokenizer, stop)
    pieces, hit = [], False
    for token in ids:
        piece, hit = text.add(token)
        pieces.append(piece)
        if hit:
            break
    pieces.append(text.flush())
    return pieces, hit


def test_pieces_add_up_to_the_whole_text_and_never_split_a_character(tokenizer):
    ids = tokenizer.encode(TEXT)
    assert len(ids) > len(TEXT) // 4, "the text should take many small tokens"
    pieces, hit = streamed(tokenizer, ids, stop=[])
    assert "".join(pieces) == tokenizer.decode(ids) == TEXT and not hit
    assert not any("\ufffd" in piece for piece in pieces)
    assert any(piece == "" for piece in pieces[:-1]), "an emoji's bytes should span tokens"


@pytest.mark.parametrize("stop", ["🐳", "app, and", "日本"])
def test_a_stop_string_across_tokens_ends_the_text_before_it(tokenizer, stop):
    pieces, hit = streamed(tokenizer, tokenizer.encode(TEXT), stop=["never there", stop])
    assert hit and "".join(pieces) == TEXT[: TEXT.index(stop)]
