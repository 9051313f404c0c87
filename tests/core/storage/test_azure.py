"""Azure Blob Storage faults, against Azurite over loopback HTTP: server errors retried
with backoff then reported naming the target and key (never bytes or a credential), an
endpoint that never answers timed out, one refusing connections failed fast, a missing
container and a wrong key reported by the service's error code. The behaviours every
target shares are in test_contract.py."""
from __future__ import annotations

import socket
import time

import pytest

from strongroom.core.storage.azure import AzureTarget
from strongroom.core.storage.base import StorageError
from tests.core.storage.conftest import AZURITE_ACCOUNT, AZURITE_KEY, FlakyRelay


def make_target(container: str, endpoint: str, **options) -> AzureTarget:
    options.setdefault("connect_timeout", 2)
    options.setdefault("read_timeout", 5)
    return AzureTarget(AZURITE_ACCOUNT, container, "pfx", endpoint_url=endpoint, **options)


@pytest.fixture
def relay_to_azurite(azurite_endpoint):
    """A FlakyRelay in front of Azurite; its account URL is the relay's plus the account."""
    made: list[FlakyRelay] = []

    def make(fail, status: int = 500, code: str = "InternalError") -> FlakyRelay:
        relay = FlakyRelay(azurite_endpoint.rsplit("/", 1)[0], fail, status, code)
        relay.account_url = f"{relay.endpoint}/{AZURITE_ACCOUNT}"
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.close()


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_until_success(container, azurite_endpoint, relay_to_azurite, status) -> None:
    relay = relay_to_azurite(lambda number, _method, _path: number < 2, status)
    target = make_target(container, relay.account_url, max_attempts=3)
    target.put("chunks/aa/aa01", b"payload")
    assert len(relay.requests) == 3          # two injected failures, then the real PUT
    direct = make_target(container, azurite_endpoint)
    assert direct.get("chunks/aa/aa01") == b"payload"
    target.close()
    direct.close()


def test_persistent_server_errors_fail_cleanly_after_max_attempts(container, relay_to_azurite) -> None:
    relay = relay_to_azurite(lambda *_: True)
    target = make_target(container, relay.account_url, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        target.put("chunks/aa/aa01", b"secret-phi-bytes")
    assert time.monotonic() - started < 20   # backoff about 1 s, then about 3 s
    assert len(relay.requests) == 3
    message = str(caught.value)
    assert f"azure://{AZURITE_ACCOUNT}/{container}/pfx" in message and "chunks/aa/aa01" in message
    assert "HTTP 500" in message
    assert "secret-phi-bytes" not in message and AZURITE_KEY[:20] not in message
    quick = make_target(container, relay.account_url, max_attempts=1)
    for call in (lambda: quick.get("k"), lambda: quick.exists("k"), lambda: list(quick.list("")),
                 lambda: quick.delete("k"), lambda: quick.put_if_absent("k", b"x"), lambda: quick.replace("k", b"x")):
        with pytest.raises(StorageError):
            call()
    target.close()
    quick.close()


def test_an_endpoint_that_never_answers_times_out(container, silent_endpoint) -> None:
    target = make_target(container, f"{silent_endpoint.endpoint}/{AZURITE_ACCOUNT}", max_attempts=2,
                         connect_timeout=1, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        target.get("snapshots/s1.manifest")
    assert time.monotonic() - started < 10
    assert "snapshots/s1.manifest" in str(caught.value) and "no answer" in str(caught.value)
    target.close()


def test_an_endpoint_refusing_connections_fails_quickly(container) -> None:
    with socket.socket() as probe:            # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = make_target(container, f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", max_attempts=2)
    started = time.monotonic()
    with pytest.raises(StorageError, match="no answer"):
        target.put("k", b"x")
    assert time.monotonic() - started < 10
    target.close()


def test_a_missing_container_is_a_storage_error_naming_it(azurite_endpoint, azure_env) -> None:
    target = make_target("sr-no-such-container", azurite_endpoint, max_attempts=1)
    with pytest.raises(StorageError, match="ContainerNotFound") as caught:
        target.put("k", b"x")
    assert "azure://devstoreaccount1/sr-no-such-container/pfx" in str(caught.value)
    target.close()


def test_a_wrong_key_is_refused_by_the_service_and_never_echoed(container, azurite_endpoint, monkeypatch) -> None:
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    target = make_target(container, azurite_endpoint, max_attempts=1)
    with pytest.raises(StorageError) as caught:
        target.put("k", b"x")
    assert "HTTP 403" in str(caught.value) and wrong not in str(caught.value)
    target.close()


def test_prefix_keeps_targets_in_one_container_apart(container, azurite_endpoint) -> None:
    a = AzureTarget(AZURITE_ACCOUNT, container, "clinic-a", endpoint_url=azurite_endpoint)
    b = AzureTarget(AZURITE_ACCOUNT, container, "clinic-b", endpoint_url=azurite_endpoint)
    a.put("snapshots/one", b"a")
    b.put("snapshots/one", b"b")
    assert (a.get("snapshots/one"), b.get("snapshots/one")) == (b"a", b"b")
    assert list(a.list("")) == ["snapshots/one"]
    a.close()
    b.close()
