"""Every prompt the project sends, versioned: fencing, judge/generation/rating, best-of-n, guidance."""
