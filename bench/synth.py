"""Synthetic preference corpora, generated shard by shard from (seed, shard index): never whole in memory.

Each pair has 10 factor values per response with realistic shapes (word counts, fact counts that
follow length, 1-5 judge scores with many ties, shares in [0, 1]) and a label from a logistic
Bradley-Terry model whose weights differ per labeler. Pair ids are 32-hex-digit strings, as the
ingest stage writes them, so the benchmark pays for hashing them.

``SyntheticShardReader`` is a ``stages.reduce.ShardReader``: a Ray task generates its shard and maps it
in one go. ``synth_shard`` gives the same rows as plain arrays (for the pandas baseline).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from profile_dist.analysis.partials import DiffBatch
from profile_dist.analysis import stats

FACTORS = (
    "length", "facts", "novel_words", "fluency", "clarity", "intent_alignment", "formality_alignment",
    "hallucination", "helpfulness", "list_items",
)
LABELERS = (("human", "human"), ("judge-a", "evaluation"), ("judge-a", "generation"))
# Log-odds per unit of standardised difference, per labeler (rows) and factor (columns).
WEIGHTS = np.array([
    [-0.3, 0.5, 0.0, 0.4, 0.3, 0.6, 0.1, -0.5, 0.6, 0.0],
    [0.9, 0.1, 0.2, 0.2, 0.2, 0.3, 0.0, -0.2, 0.3, 0.4],
    [0.5, 0.3, 0.1, 0.3, 0.3, 0.4, 0.1, -0.3, 0.4, 0.2],
])
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-hex-digit ids as an Arrow string array, built from buffers (no Python strings)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    offsets = pa.py_buffer(np.arange(0, 32 * n + 1, 32, dtype=np.int64).tobytes())
    return pa.LargeStringArray.from_buffers(n, offsets, pa.py_buffer(chars.tobytes()))


def _responses(rng: np.random.Generator, n: int) -> np.ndarray:
    """float64[n, 10] factor values of n responses (cheap draws: generation is not what we measure)."""
    out = np.empty((n, len(FACTORS)), dtype=np.float64)
    uniform = rng.random((n, 4), dtype=np.float32)
    out[:, 0] = np.rint(np.exp(5.0 + 0.6 * rng.standard_normal(n, dtype=np.float32)))  # words
    out[:, 1] = np.floor(out[:, 0] / 25 + 3 * uniform[:, 0])  # facts follow length
    out[:, 2] = np.round(uniform[:, 1] * 0.6, 3)  # novel-word share
    out[:, 3:7] = rng.integers(1, 6, (n, 4), dtype=np.int8)  # fluency, clarity, intent, formality: 1-5
    out[:, 7] = np.floor(out[:, 1] * uniform[:, 2] * 0.2)  # hallucinated facts
    out[:, 8] = np.floor(out[:, 1] * (0.3 + 0.6 * uniform[:, 3]))  # helpful facts
    out[:, 9] = rng.integers(0, 4, n, dtype=np.int8) * (uniform[:, 2] < 0.3)  # list items
    return out


def synth_shard(seed: int, index: int, n_pairs: int, missing_rate: float = 0.005) -> dict[str, np.ndarray | pa.Array]:
    """One shard: pair ids, labeler index, values of response a and b, and label (True: a preferred)."""
    rng = np.random.default_rng([seed, index])
    ids = hex_ids(rng, n_pairs)
    labeler = rng.integers(0, len(LABELERS), n_pairs)
    a, b = _responses(rng, n_pairs), _responses(rng, n_pairs)
    scale = np.array([120, 3, 0.15, 1.6, 1.6, 1.6, 1.6, 1, 2.5, 1])
    margin = np.einsum("nf,nf->n", (a - b) / scale, WEIGHTS[labeler])
    a_preferred = rng.random(n_pairs, dtype=np.float32) < 1 / (1 + np.exp(-margin.astype(np.float32)))
    cells = rng.integers(0, n_pairs * len(FACTORS), rng.binomial(n_pairs * len(FACTORS), missing_rate))
    a.reshape(-1)[cells[cells % len(FACTORS) != 0]] = np.nan  # length (column 0) is always known: a rule factor
    return {"pair_id": ids, "labeler": labeler, "a": a, "b": b, "a_preferred": a_preferred}


@dataclass(frozen=True)
class SyntheticShardReader:
    name: str
    seed: int
    index: int
    n_pairs: int
    length_tolerance: float = 0.10

    def read(self, factors: tuple[str, ...]) -> DiffBatch:
        if tuple(factors) != FACTORS:
            raise ValueError(f"synthetic shards carry factors {FACTORS}, not {factors}")
        shard = synth_shard(self.seed, self.index, self.n_pairs)
        a, b = shard["a"], shard["b"]
        diffs = np.where(shard["a_preferred"][:, None], a - b, b - a)
        matched = np.abs(a[:, 0] - b[:, 0]) <= self.length_tolerance * np.maximum(a[:, 0], b[:, 0])
        pair_hash = stats.id_hashes(shard["pair_id"])
        groups = [(labeler, setting, "helpful") for labeler, setting in LABELERS]
        return DiffBatch(groups, shard["labeler"].astype(np.int32), pair_hash, pair_hash, diffs, matched, Counter())


def readers(n_pairs: int, shard_pairs: int, seed: int = 0) -> list[SyntheticShardReader]:
    n_shards = -(-n_pairs // shard_pairs)
    return [
        SyntheticShardReader(f"synthetic://{seed}/{i}", seed, i, min(shard_pairs, n_pairs - i * shard_pairs))
        for i in range(n_shards)
    ]
