"""Authentication and authorisation: who may act, and the evidence that they did.

passwords (Argon2id and the password policy), totp (enrolment, verification with replay
protection), users (accounts, locking, 2FA reset), login (the one way in: rate limits,
lockout, second factor), sessions (hashed tokens with idle and absolute expiry), rbac
(roles, permissions, time-limited grants) and security (security events, each mirrored
into the audit chain). Nothing here ever records a password, a TOTP code, a token or PHI.
"""
