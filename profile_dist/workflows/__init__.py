"""Whole jobs built from the stages: job YAML, model stages, nightly audit, improve, demo."""
