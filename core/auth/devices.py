"""The devices each account logs in from, and the alarm a new one raises.

A device is what the transport can vouch for, strongest first: the CURVE public key a
remote client proved it holds (the key pair `strongroom keys client-key` makes), or, for
the local socket, the machine and program the client reports together with the
transport's address kind. Only a hash of it is stored (a fingerprint), with a label a
person recognises; the key or address itself is not kept here.

A login from a device the account has used before updates when it was last seen. A
first login from a new device is a security event: `new_device` at medium severity when
the account already had other devices (someone may have its password), low for the
account's very first device. The daemon turns `new_device` events into notifications
when `[auth] notify_new_device` is on.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from strongroom.core.auth import security
from strongroom.core.db.models import UserDevice
from strongroom.core.ids import new_id

_devices = UserDevice.__table__


@dataclass(frozen=True)
class Device:
    kind: str           # "curve" or "host"
    fingerprint: str
    label: str


def identify(*, curve_key: str | None, host: str | None, program: str | None, addr: str | None) -> Device:
    """The device a login comes from (see the module docstring for what counts)."""
    if curve_key:
        digest = hashlib.sha256(b"strongroom-device\0curve\0" + curve_key.encode()).hexdigest()
        return Device("curve", digest, f"CURVE key {digest[:12]}")
    transport = (addr or "").split("=", 1)[0] if (addr or "").startswith("ipc") else ("tcp" if addr else "unknown")
    host_text, program_text = (host or "unknown host")[:120], (program or "unknown program")[:60]
    digest = hashlib.sha256("\0".join(["strongroom-device", "host", transport, host_text, program_text])
                            .encode()).hexdigest()
    return Device("host", digest, f"{program_text} on {host_text} ({transport})")


def seen(conn: Connection, user_id: uuid.UUID, username: str, device: Device, *, now: datetime,
         ip_address: str | None = None, user_agent: str | None = None) -> bool:
    """Record a login from `device`; True when the account had never used it."""
    known = conn.execute(select(_devices.c.id).where(_devices.c.user_id == user_id,
                                                     _devices.c.fingerprint == device.fingerprint)).scalar()
    if known is not None:
        conn.execute(update(_devices).where(_devices.c.id == known)
                     .values(last_seen_at=now, logins=_devices.c.logins + 1))
        return False
    others = conn.execute(select(func.count()).select_from(_devices).where(_devices.c.user_id == user_id)).scalar()
    conn.execute(insert(_devices), [{"id": new_id(), "user_id": user_id, "fingerprint": device.fingerprint,
                                     "kind": device.kind, "label": device.label[:200], "first_seen_at": now,
                                     "last_seen_at": now, "logins": 1}])
    security.record(
        conn, "new_device", severity="medium" if others else "low", user_id=user_id, username=username,
        description=("login from a device this account has not used before" if others
                     else "first login of this account: its first device"),
        ip_address=ip_address, user_agent=user_agent,
        details={"device": device.label[:200], "kind": device.kind, "fingerprint": device.fingerprint[:16],
                 "known_devices": int(others)}, now=now)
    return True


def list_devices(conn: Connection, user_id: uuid.UUID) -> list[dict]:
    rows = conn.execute(select(_devices).where(_devices.c.user_id == user_id)
                        .order_by(_devices.c.last_seen_at.desc())).mappings()
    return [{"id": r["id"], "kind": r["kind"], "label": r["label"], "fingerprint": r["fingerprint"][:16],
             "first_seen_at": r["first_seen_at"], "last_seen_at": r["last_seen_at"], "logins": r["logins"]}
            for r in rows]
