"""Which columns hold field ciphertext, and whose key seals them.

Clinical tables carry a `key_id` column naming the client's data key that seals all of
the row's encrypted fields; `users.totp_secret_enc` is sealed with the system key (the
key id inside the ciphertext says which). Key rotation, integrity checks (plaintext PHI
where ciphertext belongs) and masking all read this one map.
"""
from __future__ import annotations

# table -> logical field names; the column is f"{field}_enc" and the AAD uses the field name.
CLIENT_KEYED: dict[str, tuple[str, ...]] = {
    "clients": ("first_name", "last_name", "date_of_birth", "ssn", "email", "phone",
                "address", "emergency_contact", "medical_history", "notes"),
    "therapy_sessions": ("notes", "soap_summary", "billing_codes", "insurance_info"),
    "client_files": ("file_name",),
}
SYSTEM_KEYED: dict[str, tuple[str, ...]] = {
    "users": ("totp_secret",),
    "practices": ("tax_id", "license_number"),
}


def column(field: str) -> str:
    return f"{field}_enc"
