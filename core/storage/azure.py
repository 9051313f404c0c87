"""A storage target in an Azure Blob Storage container (or Azurite, its emulator).

Blob name = `<prefix>/<key>`, so several practices or machines can share a container.
The credential comes only from the environment, never from Strongroom's config file or
the target URL, so the config can be shown and backed up without leaking a secret:
`AZURE_STORAGE_KEY` (the account's shared key), `AZURE_STORAGE_SAS_TOKEN` (a shared
access signature for the container), or `AZURE_STORAGE_CONNECTION_STRING` (its
AccountKey or SharedAccessSignature is used; its AccountName must be the URL's). No
message or log line here carries one.

What the Target contract needs, and how Azure gives it:
- Atomic writes: a single Put Blob replaces the blob whole; a larger upload stages
  blocks and becomes visible only when its block list commits, so a reader never sees
  half an object and a failed upload leaves the old blob as it was.
- put_if_absent: the write carries If-None-Match: * (the SDK's overwrite=False), which
  the service refuses with 409 when the blob exists: exactly one of racing writers wins.
- replace (the key bag): the new blob is written first, then every other version of it
  is deleted where the account keeps blob versions. Blob soft delete keeps overwritten
  data for its retention period whatever a client does: an account holding a key bag
  must have it off (README, Erasure).
- A flaky network or throttling: azure-core retries 5xx, 408, 429 and connection errors
  with exponential backoff up to `max_attempts`; the timeouts bound every attempt, so a
  dead endpoint fails the job in bounded time instead of hanging the daemon.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ExponentialRetry

from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.storage.base import StorageError, validate_key, validate_prefix

log = logging.getLogger(__name__)

ENV_KEY, ENV_SAS, ENV_CONNECTION = "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING"
_ACCOUNT_RE = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def credential_from_environment(account: str) -> Any:
    """The account's credential from the environment (see the module docstring); a
    ValidationError naming the variables when there is none, never a value."""
    key, sas = os.environ.get(ENV_KEY), os.environ.get(ENV_SAS)
    if key:
        return {"account_name": account, "account_key": key}
    if sas:
        return sas.lstrip("?")
    connection = os.environ.get(ENV_CONNECTION)
    if connection:
        fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
        named = fields.get("AccountName")
        if named and named != account:
            raise ValidationError(f"Azure target: {ENV_CONNECTION} is for another storage account than "
                                  "the target URL names")
        if fields.get("AccountKey"):
            return {"account_name": account, "account_key": fields["AccountKey"]}
        if fields.get("SharedAccessSignature"):
            return fields["SharedAccessSignature"].lstrip("?")
        raise ValidationError(f"Azure target: {ENV_CONNECTION} holds neither an AccountKey nor a "
                              "SharedAccessSignature")
    raise ValidationError(f"Azure target: no credential; set {ENV_KEY}, {ENV_SAS} or {ENV_CONNECTION} "
                          "in the daemon's environment (never in the config file)")


class AzureTarget:
    """Blobs in `container` of `account` under `prefix`; see the module docstring."""

    # Blobs per List Blobs page (the service's maximum); list() holds one page at a time.
    list_page_size = 1000

    def __init__(self, account: str, container: str, prefix: str = "", *, endpoint_url: str | None = None,
                 max_attempts: int = 5, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 credential: Any = None) -> None:
        if _ACCOUNT_RE.fullmatch(account or "") is None:
            raise ValidationError("Azure storage account name must be 3-24 lower-case letters and digits")
        if _CONTAINER_RE.fullmatch(container or "") is None:
            raise ValidationError("Azure container name must be 3-63 of a-z, 0-9 and single hyphens, "
                                  "starting and ending with a letter or digit")
        if not 1 <= max_attempts <= 20:
            raise ValidationError("max_attempts must be between 1 and 20")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValidationError("connect_timeout and read_timeout must be positive")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.account, self.container, self.prefix = account, container, prefix
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._key_prefix = f"{prefix}/" if prefix else ""
        account_url = self.endpoint_url or f"https://{account}.blob.core.windows.net"
        retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=max_attempts - 1,
                                 random_jitter_range=1)
        self._client = ContainerClient(
            account_url, container, credential=credential if credential is not None
            else credential_from_environment(account),
            retry_policy=retry, connection_timeout=connect_timeout, read_timeout=read_timeout)

    # -- Target protocol ---------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Put Blob, or staged blocks committed at the end: atomic either way."""
        name = self._name(key)
        try:
            self._client.upload_blob(name, bytes(data), overwrite=True, max_concurrency=1)
        except AzureError as exc:
            raise self._error("write", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A conditional write (If-None-Match: *): False when the blob already exists."""
        name = self._name(key)
        try:
            self._client.upload_blob(name, bytes(data), overwrite=False, max_concurrency=1)
            return True
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise self._error("write", key, exc) from exc

    def replace(self, key: str, data: bytes) -> None:
        """Write the new blob, then delete every other version of it (an account with
        blob versioning keeps them): no earlier bytes stay retrievable. The write comes
        first, so a failure loses nothing; a failed delete raises and the caller retries."""
        name = self._name(key)
        try:
            self._client.upload_blob(name, bytes(data), overwrite=True, max_concurrency=1)
            for item in self._client.list_blobs(name_starts_with=name, include=["versions"]):
                if item.name == name and item.version_id and not item.is_current_version:
                    self._client.delete_blob(name, version_id=item.version_id)
        except AzureError as exc:
            raise self._error("replace", key, exc) from exc

    def get(self, key: str) -> bytes:
        """Download the whole blob; NotFoundError naming the key when it is missing."""
        name = self._name(key)
        try:
            return self._client.download_blob(name, max_concurrency=1).readall()
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"{self.describe()}: no object {key!r}") from exc
        except AzureError as exc:
            raise self._error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._properties(key) is not None

    def size(self, key: str) -> int | None:
        properties = self._properties(key)
        return None if properties is None else int(properties.size)

    def modified_at(self, key: str) -> datetime | None:
        properties = self._properties(key)
        return None if properties is None else properties.last_modified.astimezone(UTC)

    def list(self, prefix: str = "") -> Iterator[str]:
        """List Blobs page by page; the service returns names in ascending order."""
        validate_prefix(prefix)
        return self._list(prefix)

    def delete(self, key: str) -> None:
        """Delete Blob with its snapshots; a missing blob is not an error."""
        name = self._name(key)
        try:
            self._client.delete_blob(name, delete_snapshots="include")
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._error("delete", key, exc) from exc

    def describe(self) -> str:
        """azure://account/container/prefix plus the endpoint; never a credential."""
        where = f"azure://{self.account}/{self.container}/{self.prefix}"
        return f"{where} (endpoint {self.endpoint_url})" if self.endpoint_url else where

    def close(self) -> None:
        self._client.close()

    # -- helpers -------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self._key_prefix + validate_key(key)

    def _properties(self, key: str):
        name = self._name(key)
        try:
            return self._client.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._error("stat", key, exc) from exc

    def _list(self, prefix: str) -> Iterator[str]:
        try:
            pages = self._client.list_blobs(name_starts_with=self._key_prefix + prefix,
                                            results_per_page=self.list_page_size).by_page()
            for page in pages:
                for item in page:
                    key = item.name[len(self._key_prefix):]
                    try:
                        yield validate_key(key)
                    except ValidationError:
                        # Not written by Strongroom; get() could not fetch it anyway.
                        log.warning("%s: skipping foreign object %r", self.describe(), item.name)
        except AzureError as exc:
            raise StorageError(f"{self.describe()}: cannot list {prefix!r}: {_cause(exc)}") from exc

    def _error(self, action: str, key: str, exc: AzureError) -> StorageError:
        return StorageError(f"{self.describe()}: cannot {action} {key!r}: {_cause(exc)}")


def _cause(exc: AzureError) -> str:
    """The service's error code and HTTP status, or the transport's error class: never
    the full message, which can carry request headers and signatures."""
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or "unknown"
        return f"Azure error {code} (HTTP {exc.status_code or '?'})"
    return f"{type(exc).__name__} (no answer from the storage endpoint)"
