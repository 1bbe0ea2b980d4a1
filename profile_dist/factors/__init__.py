"""The factor registry; importing this package registers every built-in factor."""

from profile_dist.factors import atomic, llm_fluency, llm_response, rules  # noqa: F401
from profile_dist.factors.base import Factor, all_factors, get_factor, register

__all__ = ["Factor", "all_factors", "get_factor", "register"]
