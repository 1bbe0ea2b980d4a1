"""Rule factors, evaluated by polars, against plain-Python definitions."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profile_dist.factors import all_factors, get_factor, register
from profile_dist.factors.base import Factor


def evaluate(name: str, texts: list[str], sources: list[str] | None = None) -> list[float]:
    frame = pl.DataFrame({"text": texts, "source_text": sources or [""] * len(texts)})
    return frame.select(get_factor(name).expr().alias("v"))["v"].to_list()


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), min_size=1, max_size=20))
@settings(max_examples=300)
def test_length_counts_words_as_python_str_split(texts):
    assert evaluate("length", texts) == [float(len(t.split())) for t in texts]


def reference_novel_words(text: str, source: str) -> float:
    words = set(re.findall(r"\w+", text.lower()))
    if not words:
        return 0.0
    return len(words - set(re.findall(r"\w+", source.lower()))) / len(words)


# Letters, digits, spaces and punctuation: where "word character" means the same to every regex engine.
word_text = st.text(alphabet=st.characters(categories=["Lu", "Ll", "Nd", "Zs", "Po"]), max_size=30)


@given(st.lists(st.tuples(word_text, word_text), min_size=1, max_size=10))
def test_novel_words_matches_reference(rows):
    texts = [t for t, _ in rows]
    sources = [s for _, s in rows]
    got = evaluate("novel_words", texts, sources)
    assert got == pytest.approx([reference_novel_words(t, s) for t, s in rows])


def test_novel_words_examples():
    assert evaluate("novel_words", ["The cat sat", "", "Cat cat DOG"], ["the CAT", "anything", "cat"]) == pytest.approx([1 / 3, 0.0, 0.5])


def test_markdown_counts():
    text = "# Title\n\nSome **bold** and __more__.\n\n- one\n* two\n3. three\n4) four\n-not a list\n```py\nx = 1\n```\n"
    assert evaluate("headers", [text]) == [1.0]
    assert evaluate("bold", [text]) == [2.0]
    assert evaluate("list_items", [text]) == [4.0]
    assert evaluate("code_blocks", [text, "```\nunclosed"]) == [1.0, 0.0]


def test_empty_response_has_zero_of_everything():
    for factor in all_factors():
        if factor.kind == "rule":
            assert evaluate(factor.name, [""], ["a prompt"]) == [0.0], factor.name


def test_registry_rejects_duplicates_and_names_unknown_factors():
    with pytest.raises(ValueError, match="already registered"):
        register(Factor(name="length", kind="rule", description="again", expr=lambda: pl.lit(0.0)))
    with pytest.raises(KeyError, match="registered factors: .*length"):
        get_factor("no_such_factor")
