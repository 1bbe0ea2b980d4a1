"""Write N generic ``pairs``-format preference pairs as Parquet shards, one row group at a time.

    python bench/gen_corpus.py --pairs 1000000 --out /tmp/corpus [--files 5] [--seed 0]

Columns: prompt, response_a, response_b, label (a/b/tie), labeler (3 labelers: human, judge-a, judge-b), as
``profile-dist ingest --format pairs`` reads them. The corpus has the shape of real preference data:

- prompts of 8-80 words and responses of 40-400 words (~1.4 KB), drawn from a 4,096-word vocabulary;
- every prompt has a pool of 8 responses; each pair compares two of them, 20 pairs per block of rows;
- a block's prompt is drawn from half as many prompts as there are blocks, so the same prompt (and
  the same responses) recur in far-apart rows and files: ingest must de-duplicate across tasks;
- labels lean towards the longer response by a labeler-specific amount (5% ties), so tau(length) differs
  between labelers and is far from 0.

Every value is a pure function of (seed, row): texts are built column-wise (numpy hashes pick the words,
Arrow joins them), so memory is bounded by one row group whatever N is, and the same seed gives the same
rows for any --files or --row-group. Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PAIRS_PER_PROMPT_BLOCK = 20
RESPONSES_PER_PROMPT = 8
PROMPT_WORDS = (8, 80)
RESPONSE_WORDS = (40, 400)
TIE_RATE = 0.05
#: Each labeler's preference for the longer response: P(a) = sigmoid(slope * (words_a - words_b) / 100).
LABELERS = {"human": 0.3, "judge-a": 1.5, "judge-b": 0.8}
VOCABULARY_SIZE = 4096

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-mixed uint64 per input."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


def keyed(seed: int, salt: int, values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return mix(np.asarray(values, dtype=np.uint64) * _GOLDEN ^ mix(np.uint64(seed) * _GOLDEN + np.uint64(salt)))


def uniform(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def vocabulary(seed: int) -> pa.Array:
    """Pronounceable pseudo-words of 1-4 syllables, some with punctuation (a stand-in for real text)."""
    syllables = np.array([c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["the", "and", "of", "to", "in", "is"])
    h = keyed(seed, 1, np.arange(VOCABULARY_SIZE))
    words = []
    for i, value in enumerate(h.tolist()):
        n = 1 + value % 4
        word = "".join(syllables[(value >> (8 * k + 8)) % len(syllables)] for k in range(n))
        words.append(word + (".", ",", "", "", "", "", "", "")[(value >> 60) % 8] if i >= 64 else word)
    return pa.array(words, pa.large_string())


def texts(seed: int, salt: int, keys: np.ndarray, lo: int, hi: int, words: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """One text per key (and its word count): the words are a pure function of (seed, salt, key, position)."""
    lengths = (lo + keyed(seed, salt, keys) % np.uint64(hi - lo + 1)).astype(np.int64)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    position = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    with np.errstate(over="ignore"):
        word_keys = np.repeat(np.asarray(keys, dtype=np.uint64), lengths) * np.uint64(1 << 20) + position.astype(np.uint64)
    picked = words.take(pa.array((keyed(seed, salt + 1, word_keys) % np.uint64(len(words))).astype(np.int64)))
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), picked), pa.scalar(" ", pa.large_string()))
    return joined, lengths


def rows(seed: int, start: int, stop: int, n_pairs: int, words: pa.Array,
         prompt_words: tuple[int, int] = PROMPT_WORDS, response_words: tuple[int, int] = RESPONSE_WORDS) -> pa.Table:
    """Pairs ``start``..``stop`` of the corpus."""
    r = np.arange(start, stop, dtype=np.uint64)
    n_blocks = -(-n_pairs // PAIRS_PER_PROMPT_BLOCK)
    n_prompts = max(1, n_blocks // 2)
    prompt = keyed(seed, 10, r // np.uint64(PAIRS_PER_PROMPT_BLOCK)) % np.uint64(n_prompts)
    h = keyed(seed, 11, r)
    k_a = h % np.uint64(RESPONSES_PER_PROMPT)
    k_b = (k_a + np.uint64(1) + (h >> np.uint64(8)) % np.uint64(RESPONSES_PER_PROMPT - 1)) % np.uint64(RESPONSES_PER_PROMPT)
    # Texts once per distinct prompt / response of the row group, then taken for every row that uses them.
    prompt_keys, prompt_of_row = np.unique(prompt, return_inverse=True)
    prompt_texts, _ = texts(seed, 20, prompt_keys, *prompt_words, words)
    response = np.concatenate([prompt * np.uint64(RESPONSES_PER_PROMPT) + k_a, prompt * np.uint64(RESPONSES_PER_PROMPT) + k_b])
    response_keys, response_of_row = np.unique(response, return_inverse=True)
    response_texts, n_words = texts(seed, 30, response_keys, *response_words, words)
    n = len(r)
    a_rows, b_rows = response_of_row[:n], response_of_row[n:]
    labeler_index = (keyed(seed, 12, r) % np.uint64(len(LABELERS))).astype(np.int64)
    slope = np.array(list(LABELERS.values()))[labeler_index]
    p_a = 1.0 / (1.0 + np.exp(-slope * (n_words[a_rows] - n_words[b_rows]) / 100.0))
    tie, u = uniform(keyed(seed, 13, r)) < TIE_RATE, uniform(keyed(seed, 14, r))
    label = np.where(tie, "tie", np.where(u < p_a, "a", "b"))
    return pa.table({
        "prompt": prompt_texts.take(pa.array(prompt_of_row)),
        "response_a": response_texts.take(pa.array(a_rows)),
        "response_b": response_texts.take(pa.array(b_rows)),
        "label": pa.array(label, pa.string()),
        "labeler": pa.array(np.array(list(LABELERS))[labeler_index], pa.string()),
    })


def write_corpus(out: str, n_pairs: int, n_files: int, seed: int = 0, row_group: int = 50_000,
                 prompt_words: tuple[int, int] = PROMPT_WORDS, response_words: tuple[int, int] = RESPONSE_WORDS) -> list[str]:
    os.makedirs(out, exist_ok=True)
    words = vocabulary(seed)
    per_file = -(-n_pairs // n_files)
    paths = []
    for f in range(n_files):
        start, stop = f * per_file, min(n_pairs, (f + 1) * per_file)
        if start >= stop:
            break
        path = os.path.join(out, f"pairs-{f:05d}.parquet")
        writer = None
        for chunk in range(start, stop, row_group):
            table = rows(seed, chunk, min(stop, chunk + row_group), n_pairs, words, prompt_words, response_words)
            if writer is None:
                writer = pq.ParquetWriter(path + ".tmp", table.schema, compression="zstd")
            writer.write_table(table, row_group_size=row_group)
        writer.close()
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


def _span(text: str) -> tuple[int, int]:
    lo, hi = (int(x) for x in text.split(","))
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected LO,HI with 1 <= LO <= HI, got {text!r}")
    return lo, hi


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, required=True)
    p.add_argument("--out", required=True, help="directory for pairs-NNNNN.parquet")
    p.add_argument("--files", type=int, default=None, help="number of files (default: one per 200,000 pairs)")
    p.add_argument("--row-group", type=int, default=50_000, help="rows per Parquet row group (the generator's memory unit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt-words", type=_span, default=PROMPT_WORDS, help="LO,HI words per prompt (default %(default)s)")
    p.add_argument("--response-words", type=_span, default=RESPONSE_WORDS,
                   help="LO,HI words per response (default %(default)s; 10,100 gives a corpus of the size issue 14 measured on)")
    a = p.parse_args(argv)
    if a.pairs <= 0 or a.row_group <= 0:
        p.error("--pairs and --row-group must be positive")
    files = a.files or max(1, -(-a.pairs // 200_000))
    t = time.perf_counter()
    paths = write_corpus(a.out, a.pairs, files, a.seed, a.row_group, a.prompt_words, a.response_words)
    n_blocks = -(-a.pairs // PAIRS_PER_PROMPT_BLOCK)
    figures = {
        "pairs": a.pairs, "files": len(paths), "bytes": sum(os.path.getsize(x) for x in paths), "row_group": a.row_group,
        "prompt_pool": max(1, n_blocks // 2), "responses_per_prompt": RESPONSES_PER_PROMPT, "labelers": len(LABELERS),
        "prompt_words": "%d-%d" % a.prompt_words, "response_words": "%d-%d" % a.response_words,
        "seed": a.seed, "seconds": f"{time.perf_counter() - t:.1f}", "out": a.out,
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
