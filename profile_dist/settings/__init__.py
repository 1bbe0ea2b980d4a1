"""Model preferences in PROFILE's two settings: prompt specs for the judge (evaluation), the leveled
generator (generation) and the independent rater of the manipulation check."""
