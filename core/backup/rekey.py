"""A backup repository as a holder of a KEK-wrapped key, for KEK rotation.

The repository's backup key is wrapped by the KEK in config.json. A KEK rotation that
rewrapped only the database would leave every repository openable only by the retired
key file: the next backup fails, and a restore after the retired file is moved offline
needs it back. `rotate_kek` therefore rewraps each configured repository (keeping
config.previous under the old KEK) before it touches the database, and confirms (drops
config.previous) once the new key file is installed.
"""
from __future__ import annotations

from strongroom.core.backup.repo_keys import CONFIG_KEY, PREVIOUS_CONFIG_KEY, read_config
from strongroom.core.backup.repository import confirm_rewrap, open_repository, rewrap
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.storage.base import Target


class RepositoryKeyHolder:
    def __init__(self, target: Target) -> None:
        self.target = target

    def describe(self) -> str:
        return self.target.describe()

    def rewrap(self, keyring: Keyring) -> bool:
        """Rewrap config.json under `keyring.kek_id`; False when there is nothing to do.

        A config.previous left by an earlier, completed rotation whose confirm step did
        not run (target unreachable then) is dropped first, but only while config.json
        itself opens with a KEK we hold: that earlier rotation's key is installed.
        """
        config = read_config(self.target, CONFIG_KEY)
        if config is None:
            return False                      # no repository here yet: nothing wrapped
        if config.kek_id == keyring.kek_id:
            return False                      # done before a crash; confirm will finish
        if config.kek_id in keyring.kek_ids() and self.target.exists(PREVIOUS_CONFIG_KEY):
            open_repository(self.target, keyring)         # proves config.json unwraps
            self.target.delete(PREVIOUS_CONFIG_KEY)
        rewrap(open_repository(self.target, keyring), keyring)
        return True

    def confirm(self, keyring: Keyring) -> None:
        config = read_config(self.target, CONFIG_KEY)
        if config is not None and config.kek_id == keyring.kek_id \
                and self.target.exists(PREVIOUS_CONFIG_KEY):
            confirm_rewrap(self.target, keyring)
