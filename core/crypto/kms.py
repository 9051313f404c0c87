"""A key-encryption key held in AWS KMS.

Design: one intermediate wrapping key, not a KMS call per data key. Rotating to KMS
asks KMS for a data key (GenerateDataKey, AES_256) under the configured KMS key; KMS
returns it in clear and encrypted under the KMS key. Only the encrypted blob is stored,
as the content of `keys.kek_file` (a "KMS envelope", mode 0600, written atomically like
any key file). At startup the envelope is decrypted once with KMS Decrypt and the
plaintext wrapping key is held in memory only; it then wraps and unwraps data keys
exactly as a file KEK does (AES-256-GCM, core.crypto.keyring).

Why not KMS Encrypt/Decrypt per data key: a bulk read (an export, an integrity scan)
opens one data key per client, 100k at scale; one KMS round trip each (tens of ms, and
KMS request quotas of a few thousand per second per account) would make those reads
minutes long and fail under throttling, and the keyring's batch unwrapping would need a
network call per row batch. With the envelope the cost is one KMS call at startup, the
KEK material itself never leaves KMS (only the wrapping key it protects is in memory,
as a file KEK is), and revoking access to the KMS key stops every new start.

The envelope's EncryptionContext binds the blob to Strongroom and to its own id
({"application": "strongroom", "purpose": "key-encryption-key", "envelope": <uuid>}):
a blob taken from elsewhere under the same KMS key does not decrypt as ours.

The KEK id stored beside each data key is "kms-" + a hash of the KMS key's ARN and the
wrapping key, so data keys under a KMS KEK are recognisable as such and a different
KMS key (or a different envelope) is reported as the wrong KEK. Every KMS failure
(unreachable, access denied, key disabled or pending deletion, wrong key) becomes a
KeyUnavailableError naming the KMS key id, never credentials.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass

from strongroom.core.errors import KeyUnavailableError

KMS_PREFIX = "strongroom-kms-kek-v1:"
_CONTEXT_APP = {"application": "strongroom", "purpose": "key-encryption-key"}
# Network limits: a daemon must refuse to start promptly, not hang, when KMS is away.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class KmsConfig:
    """How to reach KMS: endpoint and region from [keys]; credentials from AWS's chain."""

    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Envelope:
    """The stored form of a KMS-protected KEK: never the key itself."""

    kms_key_arn: str
    envelope_id: str
    blob: bytes

    def context(self) -> dict[str, str]:
        return {**_CONTEXT_APP, "envelope": self.envelope_id}

    def to_text(self) -> str:
        body = {"kms_key": self.kms_key_arn, "envelope": self.envelope_id,
                "blob": base64.b64encode(self.blob).decode()}
        return KMS_PREFIX + json.dumps(body, sort_keys=True) + "\n"


def is_envelope(text: str) -> bool:
    return text.lstrip().startswith(KMS_PREFIX)


def parse_envelope(text: str, source: str) -> Envelope:
    text = text.strip()
    try:
        body = json.loads(text[len(KMS_PREFIX):])
        envelope = Envelope(str(body["kms_key"]), str(body["envelope"]), base64.b64decode(body["blob"], validate=True))
    except (ValueError, KeyError, TypeError):
        raise KeyUnavailableError(f"{source}: damaged KMS key envelope (expected '{KMS_PREFIX}{{...}}')") from None
    if not envelope.kms_key_arn or not envelope.blob:
        raise KeyUnavailableError(f"{source}: damaged KMS key envelope (no KMS key or no blob)")
    return envelope


def kms_kek_id(kms_key_arn: str, key: bytes) -> str:
    return "kms-" + hashlib.sha256(b"strongroom-kms-kek-id\0" + kms_key_arn.encode() + b"\0" + key).hexdigest()[:16]


def _client(config: KmsConfig, key_id: str):  # noqa: ANN202 - boto3 clients are untyped
    import boto3
    from botocore.config import Config

    region = config.region
    if region is None and key_id.startswith("arn:"):
        parts = key_id.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
    try:
        return boto3.session.Session().client(
            "kms", endpoint_url=config.endpoint_url, region_name=region,
            config=Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                          retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}))
    except Exception as exc:  # botocore raises several unrelated types for bad setup
        raise KeyUnavailableError(f"KMS key {key_id}: cannot set up a KMS client ({type(exc).__name__}: "
                                  "set keys.kms_region or AWS_DEFAULT_REGION)") from None


_REASONS = {
    "AccessDeniedException": "access denied (check the IAM policy and the key policy)",
    "DisabledException": "the KMS key is disabled",
    "KMSInvalidStateException": "the KMS key is not usable in its current state (pending deletion or import?)",
    "NotFoundException": "no such KMS key",
    "IncorrectKeyException": "this is not the KMS key that encrypted the stored KEK",
    "InvalidCiphertextException": "the stored KEK envelope does not decrypt under this KMS key and context "
                                  "(wrong key, or the envelope was altered)",
    "UnrecognizedClientException": "the AWS credentials were refused",
    "InvalidSignatureException": "the AWS credentials were refused",
    "ExpiredTokenException": "the AWS credentials have expired",
    "ThrottlingException": "KMS is throttling requests; try again",
    "KMSInternalException": "KMS reported an internal error; try again",
}


def _unavailable(key_id: str, exc: Exception) -> KeyUnavailableError:
    """A KMS failure as an error naming the key and the reason, never credentials."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        reason = _REASONS.get(code, f"KMS refused the request ({code or 'unknown error'})")
    elif isinstance(exc, NoCredentialsError):
        reason = "no AWS credentials found (environment, shared config, instance or container role)"
    elif isinstance(exc, BotoCoreError):
        reason = f"KMS cannot be reached ({type(exc).__name__})"
    else:
        reason = f"KMS request failed ({type(exc).__name__})"
    return KeyUnavailableError(f"KMS key {key_id}: {reason}")


def create_envelope(config: KmsConfig, kms_key_id: str) -> tuple[Envelope, bytes]:
    """A new 32-byte wrapping key from KMS: its envelope, and the key (for memory only)."""
    from botocore.exceptions import BotoCoreError, ClientError

    envelope_id = str(uuid.uuid4())
    client = _client(config, kms_key_id)
    try:
        answer = client.generate_data_key(KeyId=kms_key_id, KeySpec="AES_256",
                                          EncryptionContext={**_CONTEXT_APP, "envelope": envelope_id})
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(kms_key_id, exc) from None
    finally:
        client.close()
    key = answer["Plaintext"]
    if len(key) != 32:
        raise KeyUnavailableError(f"KMS key {kms_key_id}: returned a {len(key)}-byte data key, expected 32")
    return Envelope(answer["KeyId"], envelope_id, answer["CiphertextBlob"]), key


def open_envelope(config: KmsConfig, envelope: Envelope, expected_key_id: str | None = None) -> bytes:
    """The wrapping key, decrypted by KMS. `expected_key_id` (keys.kms_key_id: ARN, key id
    or alias) is the key the configuration says holds the KEK; it is resolved to its ARN
    first, and a different key than the envelope's is refused as the wrong key."""
    from botocore.exceptions import BotoCoreError, ClientError

    key_id = expected_key_id or envelope.kms_key_arn
    client = _client(config, key_id)
    try:
        # DescribeKey first: it resolves an alias to the key's ARN (to tell a wrong key
        # from a damaged envelope) and says why a key cannot be used before Decrypt does.
        meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
        if expected_key_id:
            arn = meta["Arn"]
            if arn != envelope.kms_key_arn:
                raise KeyUnavailableError(
                    f"KMS key {expected_key_id}: {_REASONS['IncorrectKeyException']} (the stored KEK "
                    f"was encrypted by KMS key {envelope.kms_key_arn})")
        state = meta.get("KeyState", "Enabled")
        if state == "Disabled":
            raise KeyUnavailableError(f"KMS key {key_id}: {_REASONS['DisabledException']}")
        if state != "Enabled":
            raise KeyUnavailableError(f"KMS key {key_id}: the KMS key is {state}, not Enabled")
        answer = client.decrypt(CiphertextBlob=envelope.blob, KeyId=envelope.kms_key_arn,
                                EncryptionContext=envelope.context())
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(key_id, exc) from None
    finally:
        client.close()
    key = answer["Plaintext"]
    if len(key) != 32:
        raise KeyUnavailableError(f"KMS key {key_id}: the stored KEK is {len(key)} bytes, expected 32")
    return key


def describe_key(config: KmsConfig, kms_key_id: str) -> dict:
    """State of the KMS key (for status and health): ARN, enabled, key state."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(config, kms_key_id)
    try:
        meta = client.describe_key(KeyId=kms_key_id)["KeyMetadata"]
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(kms_key_id, exc) from None
    finally:
        client.close()
    return {"arn": meta["Arn"], "enabled": bool(meta.get("Enabled")), "state": meta.get("KeyState")}
