"""The nightly audit: ingest new data, annotate what is not cached, reduce, compare with the previous audit."""
