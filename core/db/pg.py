"""PostgreSQL-only constants shared by migrations, the audit log and the daemon."""

# pg_advisory_xact_lock key that serialises audit chain appends (application and
# triggers alike). Distinct from the daemon's leader-election key.
AUDIT_LOCK_KEY = 0x5352_4155_4454  # "SRAUDT"
LEADER_LOCK_KEY = 0x5352_4C45_4144  # "SRLEAD"
# Writers hold this shared (transaction-level) from the moment they take a change
# version until they commit; a backup takes it exclusively for the instant it opens its
# snapshot, so every version at or below its watermark is committed and visible to it.
CHANGE_LOCK_KEY = 0x5352_4348_4E47  # "SRCHNG"
# Serialises the first creation of a practice-wide key (system, blind index, audit
# signing): without it, threads that all find the key missing would each make one.
SINGLETON_KEY_LOCK_KEY = 0x5352_534B_4559  # "SRSKEY"
