"""Repository functions: the only code that reads or writes clinical rows.

They encrypt on write, decrypt on read, mask for readers without `phi:read`, keep the
sync columns (`sync_version`, `data_checksum`, `updated_at`, `deleted_at`) right and
audit every access in the caller's transaction.
"""
