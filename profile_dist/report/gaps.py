"""The generation-evaluation gap per model (PROFILE_METHOD.md section 5).

For a task with a human source H and a model M seen in both settings:
gap(metric) = alignment(H, M/evaluation) - alignment(H, M/generation), over the factors whose tau is
defined for all three sources, with a percentile CI from the shared bootstrap replicates. Per factor,
tau_M/generation - tau_M/evaluation with its CI says which factors open the gap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from profile_dist import schema
from profile_dist.analysis import stats
from profile_dist.report.replicates import CellKey, interval

HUMAN_SETTING = "human"


def _by_task(influence: list[dict[str, Any]]) -> dict[str, dict[tuple[str, str], dict[str, float]]]:
    out: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for r in influence:
        if r["tau"] is not None:
            out.setdefault(r["task"], {}).setdefault((r["labeler"], r["setting"]), {})[r["factor"]] = r["tau"]
    return out


def _replicate_matrix(reps: dict[CellKey, np.ndarray], source: tuple[str, str], task: str, factors: list[str]) -> np.ndarray | None:
    rows = [reps.get((source[0], source[1], task, f)) for f in factors]
    if any(r is None for r in rows) or len({len(r) for r in rows}) != 1 or len(rows[0]) == 0:
        return None
    return np.stack(rows)  # (F, B)


def generation_gaps(
    influence: list[dict[str, Any]], reps: dict[CellKey, np.ndarray], level: float = 0.95, top_k: int = 3,
) -> dict[str, list[dict[str, Any]]]:
    """{"alignment": one row per (task, human, model, metric), "factors": one row per (task, human, model, factor)}."""
    alignment_rows: list[dict[str, Any]] = []
    factor_rows: list[dict[str, Any]] = []
    for task, sources in sorted(_by_task(influence).items()):
        humans = sorted(s for s in sources if s[1] == HUMAN_SETTING)
        models = sorted({s[0] for s in sources if (s[0], "evaluation") in sources and (s[0], "generation") in sources})
        for human in humans:
            for model in models:
                ev, gen = (model, "evaluation"), (model, "generation")
                factors = sorted(set(sources[human]) & set(sources[ev]) & set(sources[gen]))
                if len(factors) < 2:
                    continue
                th, te, tg = (np.array([sources[s][f] for f in factors]) for s in (human, ev, gen))
                point_e, point_g = stats.alignment_metrics(th, te, top_k), stats.alignment_metrics(th, tg, top_k)
                mats = [_replicate_matrix(reps, s, task, factors) for s in (human, ev, gen)]
                boot = None
                if all(m is not None for m in mats) and len({m.shape[1] for m in mats}) == 1:
                    boot = mats
                samples: dict[str, dict[str, list[float]]] = {m: {"e": [], "g": []} for m in schema.ALIGNMENT_METRICS}
                if boot is not None:
                    for r in range(boot[0].shape[1]):
                        me = stats.alignment_metrics(boot[0][:, r], boot[1][:, r], top_k)
                        mg = stats.alignment_metrics(boot[0][:, r], boot[2][:, r], top_k)
                        for metric in schema.ALIGNMENT_METRICS:
                            samples[metric]["e"].append(me[metric])
                            samples[metric]["g"].append(mg[metric])
                for metric in schema.ALIGNMENT_METRICS:
                    e_s, g_s = np.array(samples[metric]["e"]), np.array(samples[metric]["g"])
                    e_ci, g_ci = interval(e_s if boot else None, level), interval(g_s if boot else None, level)
                    gap_ci = interval(e_s - g_s if boot else None, level)
                    gap = point_e[metric] - point_g[metric]
                    alignment_rows.append({
                        "task": task, "human": f"{human[0]}/{human[1]}", "labeler": model, "metric": metric,
                        "n_factors": len(factors),
                        "evaluation": _num(point_e[metric]), "evaluation_ci": list(e_ci),
                        "generation": _num(point_g[metric]), "generation_ci": list(g_ci),
                        "gap": _num(gap), "gap_ci": list(gap_ci),
                    })
                for i, factor in enumerate(factors):
                    diff_ci = interval(boot[2][i] - boot[1][i] if boot else None, level)
                    factor_rows.append({
                        "task": task, "human": f"{human[0]}/{human[1]}", "labeler": model, "factor": factor,
                        "tau_human": th[i], "tau_evaluation": te[i], "tau_generation": tg[i],
                        "generation_minus_evaluation": tg[i] - te[i], "ci": list(diff_ci),
                    })
    return {"alignment": alignment_rows, "factors": factor_rows}


def _num(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def from_gap_table(gap_rows: list[dict[str, Any]], alignment: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reduce's gap table (schema.GAP) in the page's layout; each side's CI from the alignment table."""
    intervals = {}
    for a in alignment:
        for x, y in ((a["source_x"], a["source_y"]), (a["source_y"], a["source_x"])):
            intervals[(a["task"], a["metric"], x, y)] = [a["ci_low"], a["ci_high"]]
    out = []
    for g in gap_rows:
        side = {s: intervals.get((g["task"], g["metric"], g["reference"], f"{g['model']}/{s}"), [None, None]) for s in ("evaluation", "generation")}
        out.append({
            "task": g["task"], "human": g["reference"], "labeler": g["model"], "metric": g["metric"], "n_factors": None,
            "evaluation": g["evaluation"], "evaluation_ci": side["evaluation"],
            "generation": g["generation"], "generation_ci": side["generation"],
            "gap": g["gap"], "gap_ci": [g["ci_low"], g["ci_high"]],
        })
    return out
