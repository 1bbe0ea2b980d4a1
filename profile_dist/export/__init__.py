"""Training-data exports built from a PROFILE run's pairs and annotations (``profile-dist export``)."""

#: --source -> the pairs' setting (kept here, light, so the CLI parser does not import polars)
SOURCES = {"judge": "evaluation", "generation": "generation", "human": "human"}
ONLY_LONGER = "only:length"  # --drop-if-only-longer
