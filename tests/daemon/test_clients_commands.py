"""clients.find over a real daemon's control socket (both engines): the console's picker
finds clients by exact last name, email or SSN's last four through blind indexes,
masked for everyone (an operator with phi:read too), audited as one READ that names
the kinds of term and never their values; bad requests are refused by field."""
from __future__ import annotations

import pytest

from tests.daemon.conftest import error_of, login, make_data_dir, running_daemon, seed_reconcile_demo


@pytest.fixture
def clients_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ids = seed_reconcile_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.ids = ids
        yield proc


def test_a_last_name_finds_its_clients_masked_even_for_a_reader_of_phi(clients_daemon):
    d = clients_daemon
    found = d.call("client.find", {"last_name": "  bee "})          # normalised as the index is
    (client,) = found["clients"]
    assert client["id"] == d.ids[2] and client["name"] == "A*** B***" and found["more"] is False
    assert set(client) == {"id", "name", "status", "created_at"}
    (read,) = d.call("audit.tail", {"action": "READ", "table_name": "clients"})
    assert read["details"] == {"via": "picker", "phi": False, "count": 1, "terms": ["last_name"]}
    assert "Bee" not in str(read)


def test_staff_without_phi_read_find_the_same_masked_answer(clients_daemon):
    d = clients_daemon
    found = d.call("client.find", {"last_name": "Bee"}, token=login(d, "staff1"))
    assert [c["id"] for c in found["clients"]] == [d.ids[2]]


def test_no_match_is_an_empty_list_and_no_term_is_refused_by_name(clients_daemon):
    d = clients_daemon
    assert d.call("client.find", {"last_name": "Nobody"})["clients"] == []
    refused = error_of(d, "client.find", {})
    assert refused.code == "bad_request" and "last_name" in refused.message
    too_long = error_of(d, "client.find", {"email": "x" * 400})
    assert too_long.code == "bad_request" and "email" in too_long.message and "xxxx" not in too_long.message
