"""A factor file read from S3 (the loopback moto server): same validation, errors naming the s3:// URI."""

from __future__ import annotations

import pytest
import yaml

from profile_dist import storage
from profile_dist.errors import BadInputError
from profile_dist.user_factors import load_definitions

ENTRY = {"name": "cites_source", "description": "Cites a source", "question": "Does it cite a source?",
         "rubric": ["none", "vague", "one", "most", "all"], "tasks": ["helpful"], "version": "1"}


def test_factor_file_from_s3(bucket):
    good, bad = f"{bucket}/team/factors.yaml", f"{bucket}/team/bad.yaml"
    storage.write_bytes_atomic(yaml.safe_dump({"factors": [ENTRY]}).encode(), good)
    storage.write_bytes_atomic(yaml.safe_dump({"factors": [{**ENTRY, "tasks": ["cooking"]}]}).encode(), bad)
    assert [d.name for d in load_definitions(good)] == ["cites_source"]
    with pytest.raises(BadInputError) as info:
        load_definitions(bad)
    assert (info.value.source_file, info.value.source_row, info.value.field) == (bad, 0, "tasks")
