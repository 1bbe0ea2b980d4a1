"""Training-data exports built from a PROFILE run's pairs and annotations (``profile-dist export``)."""
