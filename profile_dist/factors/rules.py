"""Rule-based factors: polars expressions over ``text`` and ``source_text``, evaluated per shard."""

from __future__ import annotations

import polars as pl

from profile_dist.factors.base import Factor, factors_of_kind, register

# Python's str.split() treats \x1c-\x1f as whitespace too; Rust's \s (Unicode White_Space) does not.
_WORD = r"[^\s\x1c-\x1f]+"
_WORD_TYPE = r"\w+"


def _length() -> pl.Expr:
    return pl.col("text").str.count_matches(_WORD).cast(pl.Float64)


def _novel_words() -> pl.Expr:
    response_types = pl.col("text").str.to_lowercase().str.extract_all(_WORD_TYPE).list.unique()
    source_types = pl.col("source_text").str.to_lowercase().str.extract_all(_WORD_TYPE).list.unique()
    n_types = response_types.list.len()
    novel = response_types.list.set_difference(source_types).list.len()
    # A response with no words has nothing novel: 0, not NaN, so empty responses still compare.
    return pl.when(n_types > 0).then(novel / n_types).otherwise(0.0).cast(pl.Float64)


def _count(pattern: str) -> pl.Expr:
    return pl.col("text").str.count_matches(pattern).cast(pl.Float64)


register(Factor(
    name="length", kind="rule", expr=_length, unit="words",
    description="number of whitespace-separated words, as Python's str.split() counts them",
))
register(Factor(
    name="novel_words", kind="rule", expr=_novel_words, unit="share",
    description="share of the response's lowercased word types (\\w+) absent from the source/prompt",
))
register(Factor(
    name="list_items", kind="rule", expr=lambda: _count(r"(?m)^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\S"), unit="count",
    description="markdown list items (lines starting with -, *, + or a number followed by . or ))",
))
register(Factor(
    name="headers", kind="rule", expr=lambda: _count(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+\S"), unit="count",
    description="markdown headers (lines starting with 1-6 #)",
))
register(Factor(
    name="bold", kind="rule", expr=lambda: _count(r"\*\*[^*\n]+\*\*|__[^_\n]+__"), unit="count",
    description="markdown bold spans (**text** or __text__)",
))
register(Factor(
    name="code_blocks", kind="rule", expr=lambda: (_count(r"(?m)^[ \t]*```") / 2).floor(), unit="count",
    description="fenced markdown code blocks (pairs of ``` lines)",
))

#: Every rule factor, in registration order: derived, so adding one is just its ``register`` call above.
RULE_FACTORS = factors_of_kind("rule")
