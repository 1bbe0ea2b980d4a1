"""Source adapters on the real files in shared/data and on malformed input."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profile_dist.errors import BadInputError
from profile_dist.sources import RawPair, RowProblem, all_sources, get_source
from profile_dist.sources.alpaca_eval import preference_label
from profile_dist.sources.hh_rlhf import ASSISTANT_MARKER, split_last_turn


def records(format_name: str, path: Path | str):
    return list(get_source(format_name).records(str(path)))


def test_registry_lists_formats_and_names_unknown_ones():
    names = {s.name for s in all_sources()}
    assert {"hh_rlhf", "alpaca_eval", "pairs"} <= names
    with pytest.raises(KeyError, match="known formats"):
        get_source("nope")


def test_hh_rlhf_real_file(shared_data):
    got = records("hh_rlhf", shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    pairs = [r for r in got if isinstance(r, RawPair)]
    assert len(pairs) == 2312 and len(got) == 2312
    first_line = json.loads(gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt").readline())
    assert pairs[0].prompt + pairs[0].response_a == first_line["chosen"]
    assert pairs[0].prompt + pairs[0].response_b == first_line["rejected"]
    assert all(p.prompt.endswith(ASSISTANT_MARKER) and p.label == "a" and p.labeler == "human" for p in pairs)
    # Five real rows whose dialogues differ before the last turn are kept and counted, not dropped.
    assert sum(1 for p in pairs if p.notes) == 5


def test_hh_rlhf_splits_at_the_marker_not_the_common_prefix():
    prompt = "\n\nHuman: Hi?\n\nAssistant:"
    assert split_last_turn(prompt + " I think so.") == (prompt, " I think so.")
    assert split_last_turn("no marker here") is None


def test_alpaca_eval_real_files(shared_data):
    got = records("alpaca_eval", shared_data / "alpaca_eval" / "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz")
    assert len(got) == 805
    labels = Counter(r.label for r in got if isinstance(r, RawPair))
    assert labels == {"a": 584, "b": 205, "tie": 16}
    assert {r.labeler for r in got} == {"alpaca_eval_gpt4"}
    assert {r.setting for r in got} == {"evaluation"}
    weighted = records("alpaca_eval", shared_data / "alpaca_eval" / "alpaca-7b_concise.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz")
    parsed = [r for r in weighted if isinstance(r, RawPair)]
    assert len(parsed) >= 800 and {r.labeler for r in parsed} == {"weighted_alpaca_eval_gpt4_turbo"}


@pytest.mark.parametrize("value, label", [
    (1, "a"), (2, "b"), (1.2, "a"), (1.8, "b"), ("1.0000003633", "a"), (0, "tie"), (1.5, "tie"),
    (3, None), (-1, None), ("x", None), (True, None), (float("nan"), None),
])
def test_alpaca_preference_values(value, label):
    assert preference_label(value) == label


def test_alpaca_null_preference_is_skipped_not_invalid(tmp_path):
    path = tmp_path / "a.json"
    row = {"instruction": "q", "output_1": "x", "output_2": "y", "annotator": "j"}
    path.write_text(json.dumps([{**row, "preference": None}, {**row, "preference": 7}, {**row, "preference": 2}]))
    got = records("alpaca_eval", path)
    assert isinstance(got[0], RowProblem) and got[0].kind == "skipped" and got[0].field == "preference"
    assert isinstance(got[1], RowProblem) and got[1].kind == "invalid" and "7" in got[1].reason
    assert isinstance(got[2], RawPair) and got[2].label == "b"


GENERIC_ROWS = [
    {"prompt": "p1", "response_a": "x", "response_b": "y", "label": "a", "labeler": "m1", "task": "summarization"},
    {"prompt": "p2", "response_a": "", "response_b": "z", "label": "TIE"},
]


def write_generic(tmp_path: Path, kind: str, rows=GENERIC_ROWS) -> Path:
    path = tmp_path / f"pairs.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "csv":
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_generic_pairs_in_every_container(tmp_path, kind):
    got = records("pairs", write_generic(tmp_path, kind))
    assert [(r.prompt, r.response_a, r.label) for r in got] == [("p1", "x", "a"), ("p2", "", "tie")]
    assert got[0].labeler == "m1" and got[0].task == "summarization"
    assert got[1].labeler == "human" and got[1].task is None


def test_feedback_forensics_layout(tmp_path):
    rows = [{"text_a": "x", "text_b": "y", "preferred_text": "text_b"}, {"text_a": "u", "text_b": "v", "preferred_text": "text_a", "prompt": "q"}]
    got = records("pairs", write_generic(tmp_path, "jsonl", rows))
    assert [(r.prompt, r.label) for r in got] == [("", "b"), ("q", "a")]


@pytest.mark.parametrize("content, row, field, reason", [
    (b'{"prompt": "p", "response_a": "x", "response_b": "y", "label": "a"}\n{not json\n', 1, "<line>", "malformed JSON"),
    (b'{"prompt": "p", "response_a": "x", "response_b": "y", "label": "maybe"}\n', 0, "label", "unknown label"),
    (b'{"prompt": "p", "response_a": 3, "response_b": "y", "label": "a"}\n', 0, "response_a", "expected a string"),
    (b'{"prompt": "p", "response_a": "x", "response_b": "y", "label": "a"}\n{"prompt": "\xff\xfe", "response_a": "x", "response_b": "y", "label": "a"}\n', 1, "<line>", "UTF-8"),
])
def test_malformed_rows_name_row_and_field(tmp_path, content, row, field, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    problems = [r for r in records("pairs", path) if isinstance(r, RowProblem)]
    assert len(problems) == 1
    assert (problems[0].source_row, problems[0].field) == (row, field)
    assert reason in problems[0].reason


def test_missing_column_is_a_file_level_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,response_a,label\np,x,a\n")
    with pytest.raises(BadInputError, match=r"bad.csv.*response_b"):
        records("pairs", path)


@pytest.mark.parametrize("name, content, reason", [
    ("missing.jsonl", None, "file not found"),
    ("broken.jsonl.gz", b"not gzip at all", "gzip"),
    ("broken.parquet", b"PAR1 garbage", "Parquet"),
    ("table.xlsx", b"", "unknown file type"),
])
def test_unreadable_files(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=reason) as info:
        records("pairs" if "hh" not in name else "hh_rlhf", path)
    assert str(path) in str(info.value)


def test_hh_rlhf_bad_rows(tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps({"chosen": "\n\nHuman: q\n\nAssistant: a"}) + "\n" + json.dumps({"chosen": "no turn", "rejected": "x"}) + "\n")
    problems = records("hh_rlhf", path)
    assert [(p.source_row, p.field) for p in problems] == [(0, "rejected"), (1, "chosen")]
