"""layout.results.require_results_dir: the one "is this a reduce output" check report, open_results,
improve/, audit/ and export/ share."""

import json

import pyarrow.parquet as pq
import pytest

from profile_dist import schema
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.layout.results import TABLES, require_results_dir, table_path


def _results_dir(path, manifest):
    path.mkdir()
    pq.write_table(schema.INFLUENCE.empty_table(), path / "influence.parquet")
    if manifest is not None:
        (path / "_manifest.json").write_text(json.dumps(manifest))
    return str(path)


def test_a_reduce_output_passes_and_returns_its_manifest(tmp_path):
    directory = _results_dir(tmp_path / "r", {"stage": "reduce", "factors": ["length"]})
    assert require_results_dir(directory, manifest=True)["factors"] == ["length"]
    assert table_path(directory, "influence").endswith("r/influence.parquet")
    assert set(TABLES) == {"influence", "alignment", "gap", "adjusted", "skipped", "replicates"}


def test_another_stages_output_is_named_in_the_error(tmp_path):
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "_manifest.json").write_text(json.dumps({"stage": "ingest"}))
    with pytest.raises(ConfigError, match=r"ingest: not a `profile-dist reduce` output directory \(it is the output of `profile-dist ingest`\)"):
        require_results_dir(str(tmp_path / "ingest"))


def test_a_manifest_of_another_stage_or_a_missing_one_when_needed_is_refused(tmp_path):
    with pytest.raises(BadInputError, match=r"field 'stage': is 'judge', expected 'reduce'"):
        require_results_dir(_results_dir(tmp_path / "j", {"stage": "judge"}))
    bare = _results_dir(tmp_path / "bare", None)
    assert require_results_dir(bare) == {}  # hand-made: readable by the report
    with pytest.raises(BadInputError, match=r"_manifest.json.*missing"):
        require_results_dir(bare, manifest=True)  # improve/export need the manifest's inputs
    with pytest.raises(ValueError, match="not a reduce table"):
        table_path(bare, "influence.parquet")
