"""tau(length) per labeler straight from a ``pairs`` corpus, the way one would without profile-dist.

    python bench/peers.py --engine pandas  CORPUS_DIR_OR_FILES...
    python bench/peers.py --engine polars  CORPUS_DIR_OR_FILES...

The same statistic as ``profile-dist reduce`` for the rule factor ``length``: for each pair not labelled a
tie, d = words(preferred) - words(other), with words as Python's ``str.split()`` counts them; C = pairs
with d > 0, D = pairs with d < 0, tau = (C - D) / (C + D). ``pandas``: a straightforward script (read every
file, split, count). ``polars``: one lazy query. Both need the whole corpus in reach of one process, which
is the point of comparing them with the distributed pipeline. Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

WORD_PATTERN = r"[^\s\x1c-\x1f]+"  # Python's str.split() words (as profile_dist.factors.rules counts them)


def corpus_files(paths: list[str]) -> list[str]:
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.parquet"))) if os.path.isdir(path) else [path]
    return files


def tau_pandas(files: list[str]) -> dict[str, tuple[int, int]]:
    import pandas as pd

    frame = pd.concat([pd.read_parquet(f, columns=["response_a", "response_b", "label", "labeler"]) for f in files],
                      ignore_index=True)
    frame = frame[frame["label"] != "tie"]
    words_a = frame["response_a"].str.split().str.len()
    words_b = frame["response_b"].str.split().str.len()
    d = (words_a - words_b).where(frame["label"] == "a", words_b - words_a)
    counts = pd.DataFrame({"labeler": frame["labeler"], "c": d > 0, "d": d < 0}).groupby("labeler")[["c", "d"]].sum()
    return {labeler: (int(row.c), int(row.d)) for labeler, row in counts.iterrows()}


def tau_polars(files: list[str]) -> dict[str, tuple[int, int]]:
    import polars as pl

    words_a = pl.col("response_a").str.count_matches(WORD_PATTERN)
    words_b = pl.col("response_b").str.count_matches(WORD_PATTERN)
    d = pl.when(pl.col("label") == "a").then(words_a.cast(pl.Int64) - words_b).otherwise(words_b.cast(pl.Int64) - words_a)
    result = (
        pl.scan_parquet(files)
        .filter(pl.col("label") != "tie")
        .group_by("labeler")
        .agg(c=(d > 0).sum(), d=(d < 0).sum())
        .collect(engine="streaming")
    )
    return {row["labeler"]: (int(row["c"]), int(row["d"])) for row in result.to_dicts()}


ENGINES = {"pandas": tau_pandas, "polars": tau_polars}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=sorted(ENGINES), required=True)
    p.add_argument("corpus", nargs="+", help="Parquet files of the pairs format, or directories of them")
    a = p.parse_args(argv)
    t = time.perf_counter()
    counts = ENGINES[a.engine](corpus_files(a.corpus))
    seconds = time.perf_counter() - t
    print_figures({"engine": a.engine, "seconds": f"{seconds:.2f}"}, counts)


def print_figures(figures: dict[str, object], counts: dict[str, tuple[int, int]]) -> None:
    """The last line every peer prints: its own figures, then tau and C + D per labeler (pipeline_scale.py reads it)."""
    figures = dict(figures)
    for labeler, (c, d) in sorted(counts.items()):
        figures[f"tau_{labeler}"] = f"{(c - d) / (c + d):+.6f}" if c + d else "nan"
        figures[f"cd_{labeler}"] = c + d
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
