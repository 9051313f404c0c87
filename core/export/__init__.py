"""The export engine: what may be exported (spec), one module per output format, and
the output directory with its manifest (archive). The job is core/jobs/export.py."""
