"""A KEK rotated at one site of a practice (issue 16: "a peer whose KEK differs is
refused with an error naming the key ids"): passes between it and a site still on the
old KEK are refused before any row moves, naming both key ids and never a key; once the
other site has taken the new KEK the way the README says (the new kit recovered to
`<kek_file>.pending`, then `keys rotate-kek`, which finishes a rotation to that key),
sync resumes and the sites end identical, edits made meanwhile on both sides included."""
from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from strongroom.core.context import open_context
from strongroom.core.crypto import kit as kits
from strongroom.core.crypto import kek_rotation
from strongroom.core.crypto.kek import Kek, encode_kek, load_keks, pending_path, write_kek_file
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, DataKey, KeyState
from strongroom.core.errors import ConflictError, StrongroomError
from strongroom.core.repository.clients import create_client, get_client, update_client
from strongroom.core.sync.consistency import compare
from strongroom.core.sync.passes import watermarks
from tests.conftest import make_settings
from tests.core.conftest import WRITER, client_ids, open_site

PASSPHRASE = "synthetic kit passphrase for tests only"


def _reopened(site, keks):
    """The same site after its key file changed (as a restarted daemon loads it)."""
    site.engine.dispose()
    again = open_site(site.name, site.url, keks)
    again.peers = site.peers
    return again


def _client(site, client_id):
    with transaction(site.engine) as conn:
        return get_client(conn, site.keyring, WRITER, client_id)


def test_a_kek_rotated_at_one_site_is_refused_until_the_other_takes_it(ctx, first_site, join_site, tmp_path):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    edited_centrally, edited_on_laptop = client_ids(first_site)[:2]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, edited_centrally, {"phone": "555-0161"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, edited_on_laptop, {"phone": "555-0162"})
        practice = conn.execute(select(Client.__table__.c.practice_id)).scalars().first()
        new_client = create_client(conn, laptop.keyring, WRITER, practice,     # a data key wrapped by the old KEK
                                   {"first_name": "Rowan", "last_name": "Tidewell", "phone": "555-0163"})

    old_key = first_site._keks[0].key
    rotated = kek_rotation.rotate_kek(ctx, actor="test")                 # `strongroom keys rotate-kek` centrally
    central = _reopened(first_site, load_keks(ctx.settings.keys))
    new_kek = central.keyring.primary
    assert (rotated.old_kek_ids, rotated.new_kek_id) == ([laptop.keyring.kek_id], new_kek.kek_id)

    marks = watermarks(laptop.engine, laptop.peers["central"])
    for run in (lambda: laptop.sync(central), lambda: central.sync(laptop)):
        with pytest.raises(ConflictError, match="KEK") as refused:
            run()
        message = str(refused.value)
        assert rotated.new_kek_id in message and laptop.keyring.kek_id in message
        for key in (old_key, new_kek.key):                         # ids, never key material
            assert not [form for form in (base64.b64encode(key).decode(), key.hex(), encode_kek(key))
                        if form in message]
    assert watermarks(laptop.engine, laptop.peers["central"]) == marks
    assert _client(laptop, edited_centrally)["phone"] != "555-0161"
    assert new_client not in client_ids(central) and _client(central, edited_on_laptop)["phone"] != "555-0162"

    # At the laptop: the new kit (`keys export-kit` centrally) recovered beside its key
    # file as the pending key (`keys recover --kit kit.txt --out <kek_file>.pending`),
    # then `keys rotate-kek`, which finishes the rotation to that key.
    kit = kits.export_kit(new_kek, PASSPHRASE, practice_name="Backup Practice", work=14)
    (tmp_path / "laptop-data").mkdir()
    laptop_kek_file = tmp_path / "laptop-data" / "kek.key"
    write_kek_file(laptop_kek_file, old_key)
    settings = make_settings(tmp_path / "laptop-data", laptop.url)
    kits.recover(kit, PASSPHRASE, pending_path(laptop_kek_file))
    laptop_ctx = open_context(settings)
    try:
        finished = kek_rotation.rotate_kek(laptop_ctx, actor="test")
    finally:
        laptop_ctx.close()
    assert finished.resumed and finished.new_kek_id == new_kek.kek_id
    laptop = _reopened(laptop, load_keks(settings.keys))
    assert laptop.keyring.kek_ids() == [new_kek.kek_id]

    laptop.sync(central)
    laptop.sync(central)
    report = compare(laptop.engine, central.engine)
    assert report["consistent"], report
    for site in (laptop, central):
        assert _client(site, edited_centrally)["phone"] == "555-0161", site.name
        assert _client(site, edited_on_laptop)["phone"] == "555-0162", site.name
        assert _client(site, new_client)["last_name"] == "Tidewell", site.name
    central.engine.dispose()


def test_a_site_midway_through_taking_the_new_kek_sends_no_key_the_other_cannot_open(ctx, first_site, join_site):
    """The laptop holds the new KEK as its pending key but has not rewrapped yet (its
    `keys rotate-kek` stopped at an unreachable backup repository, and the daemon
    restarted): its keys are still wrapped by the old KEK, which the central site no
    longer holds. The pass is refused naming both key ids, and nothing the central site
    cannot open arrives there."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    with transaction(laptop.engine) as conn:
        practice = conn.execute(select(Client.__table__.c.practice_id)).scalars().first()
        new_client = create_client(conn, laptop.keyring, WRITER, practice, {"first_name": "Rowan",
                                                                            "last_name": "Tidewell"})
    old = first_site._keks[0]
    rotated = kek_rotation.rotate_kek(ctx, actor="test")
    central = _reopened(first_site, load_keks(ctx.settings.keys))
    midway = _reopened(laptop, [old, Kek(central.keyring.primary.key, "laptop kek.key.pending")])
    with pytest.raises(StrongroomError, match="KEK") as refused:
        midway.sync(central)
    assert rotated.new_kek_id in str(refused.value) and old.kek_id in str(refused.value)
    with transaction(central.engine, read_only=True) as conn:
        in_use = set(conn.execute(select(DataKey.__table__.c.kek_id)
                                  .where(DataKey.__table__.c.state != KeyState.DESTROYED)).scalars())
    assert in_use == {rotated.new_kek_id}
    assert new_client not in client_ids(central)
    central.engine.dispose()
