"""Pipeline stages: ingest -> annotate -> reduce -> report. Each reads and writes Parquet tables
with the schemas in ``profile_dist.schema``, so any stage can be rerun alone."""
