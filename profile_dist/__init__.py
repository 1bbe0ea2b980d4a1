"""profile-dist: PROFILE factor-level preference analysis as a distributed batch job on Ray."""

__version__ = "0.1.0"
