"""profile-dist: PROFILE factor-level preference analysis as a distributed batch job on Ray."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["open_results"]


def __getattr__(name: str) -> Any:
    # Lazy: `import profile_dist` (and so the CLI) stays free of polars/pyarrow until results are opened.
    if name == "open_results":
        from profile_dist.results import open_results  # on use: see above

        return open_results
    raise AttributeError(f"module 'profile_dist' has no attribute {name!r}")
