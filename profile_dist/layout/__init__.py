"""Where every output lives, one home for directory layouts:

- :mod:`~profile_dist.layout.published`: outputs with one writer that appear whole (claim, manifest last,
  readers trusting only the files the manifest lists).
- :mod:`~profile_dist.layout.pairs`: the pairs directory (ingest-shaped) and its one in-memory writer;
  model names as path segments.
- :mod:`~profile_dist.layout.results`: the reduce's results directory: file names, ``require_results_dir``.
"""

from profile_dist.layout.pairs import PAIRS_DIR_TABLES, slug, write_ingest_shaped
from profile_dist.layout.published import MANIFEST
from profile_dist.layout.results import require_results_dir

__all__ = ["MANIFEST", "PAIRS_DIR_TABLES", "require_results_dir", "slug", "write_ingest_shaped"]
