"""Acting on an audit (``profile-dist improve``): factor-level feedback to a generator, re-measured."""
