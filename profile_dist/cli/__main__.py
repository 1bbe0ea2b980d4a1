"""python -m profile_dist.cli ... (as the tests and ray job submit use it)."""

from profile_dist.cli import console

console()
