"""Second-factor enrolment at login over the real control socket: auth.login answers
`enrolment_required` with a new secret and a token, auth.enrol confirms it with a code
and returns a session; wrong codes and bad tokens are refused; the secret is never logged."""
from __future__ import annotations

import pyotp
import pytest

from strongroom.console.client import ClientError
from tests.daemon.conftest import PASSWORD, add_unenrolled_admin, make_data_dir, running_daemon


@pytest.fixture
def daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    add_unenrolled_admin(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


def refused(daemon, cmd, args) -> ClientError:
    with pytest.raises(ClientError) as err:
        daemon.call(cmd, args, token=None)
    return err.value


def test_login_offers_enrolment_and_a_right_code_opens_the_session(daemon):
    offer = daemon.call("auth.login", {"username": "newadmin", "password": PASSWORD}, token=None)
    assert offer["enrolment_required"] is True and "token" not in offer
    assert "requires two-factor authentication" in offer["message"]
    enrolment = offer["enrolment"]
    assert enrolment["username"] == "newadmin" and enrolment["qr_text"].strip()
    assert enrolment["uri"].startswith("otpauth://totp/Strongroom:newadmin?")
    secret = enrolment["secret"]

    totp = pyotp.TOTP(secret)
    wrong = "000000" if totp.now() != "000000" else "111111"
    err = refused(daemon, "auth.enrol", {"enrolment_token": enrolment["token"], "totp": wrong})
    assert err.code == "unauthenticated" and "invalid TOTP code" in err.message
    session = daemon.call("auth.enrol", {"enrolment_token": enrolment["token"], "totp": totp.now(),
                                         "client": {"name": "pytest"}}, token=None)
    assert daemon.call("whoami", token=session["token"])["actor"] == "user:newadmin"

    # Enrolled: a login now needs a code from the new authenticator, and the offer is spent.
    err = refused(daemon, "auth.login", {"username": "newadmin", "password": PASSWORD})
    assert err.code == "unauthenticated" and "TOTP code is required" in err.message
    err = refused(daemon, "auth.enrol", {"enrolment_token": enrolment["token"], "totp": totp.now()})
    assert "already has an authenticator enrolled" in err.message

    kinds = [e["event_type"] for e in daemon.call("security.event.list", {"limit": 20})]
    assert {"totp_enrolment_offered", "totp_enrolled", "login_success"} <= set(kinds)
    assert secret not in daemon.log() and enrolment["token"] not in daemon.log()


def test_bad_enrolment_requests_are_refused_clearly(daemon):
    err = refused(daemon, "auth.enrol", {"enrolment_token": "not-a-token", "totp": "123456"})
    assert err.code == "unauthenticated" and "invalid enrolment token" in err.message
    err = refused(daemon, "auth.enrol", {"enrolment_token": "x"})
    assert err.code == "bad_request" and "totp" in err.message
    err = refused(daemon, "auth.enrol", {"enrolment_token": "x" * 5000, "totp": "123456"})
    assert err.code == "bad_request" and "enrolment_token" in err.message
    err = refused(daemon, "auth.login", {"username": "newadmin", "password": "not the password"})
    assert err.code == "unauthenticated" and "invalid username or password" in err.message
    help_ = {c["cmd"]: c["permission"] for c in daemon.call("help", token=None)}
    assert "auth.enrol" in help_ and help_["auth.enrol"] is None
