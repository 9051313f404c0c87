"""Backup and restore (DESIGN.md §6).

Every table travels as segments of PostgreSQL COPY TEXT lines (see `copytext`), the one
canonical byte format both engines produce and consume: PostgreSQL natively through
`COPY ... TO STDOUT` / `COPY ... FROM STDIN`, SQLite through `copytext.encode_rows` and
`copytext.decode_lines`. Because the bytes are identical whatever engine wrote them, a
restore drill can re-encode restored tables and compare SHA-256 with the manifest across
engines.
"""
