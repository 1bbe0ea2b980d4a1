"""Corpus adapters, one module per format; importing this package registers them all."""

from profile_dist.sources import alpaca_eval, hh_rlhf, pairs, shp, tldr, webgpt  # noqa: F401
from profile_dist.sources.base import RawPair, RowProblem, Source, all_sources, get_source, register_source

__all__ = ["RawPair", "RowProblem", "Source", "all_sources", "get_source", "register_source"]
