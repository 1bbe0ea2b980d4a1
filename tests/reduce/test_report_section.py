"""report.md's adjusted-vs-plain section lists exactly the cells where the two disagree."""

from __future__ import annotations

from profile_dist.report.markdown import adjusted_section
from profile_dist.analysis.tables import disagreement


def row(factor: str, tau: tuple, bt: tuple, why: str) -> dict:
    return {
        "labeler": "human", "setting": "human", "task": "helpful", "factor": factor,
        "tau": tau[0], "tau_ci_low": tau[1], "tau_ci_high": tau[2],
        "length_controlled_tau": None, "length_controlled_tau_ci_low": None, "length_controlled_tau_ci_high": None,
        "n_length_matched_decided": 0, "bt_coef": bt[0], "bt_coef_ci_low": bt[1], "bt_coef_ci_high": bt[2],
        "n_bt_pairs": 100, "disagreement": why,
    }


def test_disagreement_reads_each_effect_as_minus_zero_or_plus():
    assert disagreement((0.3, 0.2, 0.4), (0.5, 0.1, 0.9), "x") == ""
    assert disagreement((0.3, 0.2, 0.4), (-0.5, -0.9, -0.1), "x") == "sign flips once x"
    assert disagreement((0.3, 0.2, 0.4), (0.1, -0.2, 0.4), "x") == "no longer distinguishable from zero once x"
    assert disagreement((0.0, -0.1, 0.1), (0.4, 0.2, 0.6), "x") == "significant only once x"
    assert disagreement((None, None, None), (0.4, 0.2, 0.6), "x") == ""


def test_section_lists_only_disagreeing_cells_and_is_absent_without_the_table():
    facts = row("facts", (0.3, 0.2, 0.4), (-0.2, -0.3, -0.1), disagreement((0.3, 0.2, 0.4), (-0.2, -0.3, -0.1), "length is held fixed"))
    length = row("length", (0.5, 0.4, 0.6), (1.0, 0.8, 1.2), "")
    text = "\n".join(adjusted_section([facts, length]))
    assert "| helpful | human/human | facts | +0.300 [+0.20, +0.40] |" in text and "sign flips once length is held fixed" in text
    assert "| length |" not in text
    assert adjusted_section([]) == []
    assert "agree with the plain taus everywhere" in "\n".join(adjusted_section([length]))
