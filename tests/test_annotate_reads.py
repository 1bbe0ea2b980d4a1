"""What a rule-factor annotate reads: a shard's responses, and the prompts only when a factor reads them."""

from __future__ import annotations

import pytest

from profile_dist import storage
from profile_dist.layout import published
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.workflows.demo import write_demo_corpus

pytestmark = pytest.mark.usefixtures("ray_session")


def test_rule_factors_that_do_not_read_the_prompt_never_open_the_prompts_table(tmp_path):
    """The prompts' buckets are not the responses': a shard joining its prompts reads every prompts file.
    Factors over the response alone (length, ...) skip that join; novel_words, which reads the prompt, does not."""
    pairs = str(tmp_path / "pairs")
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], pairs, rows_per_shard=60, progress=False)
    for prompts_file in published.table_files(pairs, "prompts"):
        storage.write_bytes_atomic(b"not parquet", prompts_file)  # any read of it fails
    summary = annotate(pairs, str(tmp_path / "ann"), factors=["length", "bold", "list_items"], progress=False)
    assert summary.n_annotations > 0
    with pytest.raises(Exception, match="prompts"):
        annotate(pairs, str(tmp_path / "ann2"), factors=["novel_words"], progress=False)
