"""The copy destination: created from the source (`--init-dest`) or checked against it.

A destination vault shares the source's master key (its own wrapper, with the destination's
passphrase) and chunker parameters, so sealed objects move byte-for-byte and the DR side restores
on its own. `prepare_destination` refuses the same vault twice, another master key or other chunker
parameters; `check_binding` refuses a WAL archive of another cluster.
"""

from __future__ import annotations

import json
import os

from seawall.copy.plan import CLUSTER_KEY
from seawall.crypto import ObjType
from seawall.errors import ConfigError, IntegrityError, ObjectNotFound, VaultNotInitialised
from seawall.stores import ObjectStore
from seawall.vault import Vault

_PROBE = b"seawall-copy-key-probe"


# ---- the destination --------------------------------------------------------------------------------
def init_destination(source: Vault, store: ObjectStore, passphrase: str, **options) -> Vault:
    """Create a destination vault holding the source's master key, wrapped by `passphrase`.

    Args:
        source: The opened source vault.
        store: The (empty) destination location.
        passphrase: The destination's own passphrase (may differ from the source's).
        **options: Further `Vault.init` options (`scrypt`).
    """
    return Vault.init(store, passphrase, keyring=source.keyring, chunker=source.config.chunker, **options)


def same_location(a: str, b: str) -> bool:
    """True when two store URLs name the same place (local paths are resolved)."""
    def norm(url: str) -> str:
        return "file://" + os.path.realpath(url[7:]) if url.startswith("file://") else url.rstrip("/")
    return norm(a) == norm(b)


def check_pair(source: Vault, dest: Vault) -> None:
    """Refuse the same vault twice, another master key, or other chunker parameters."""
    if same_location(source.url, dest.url) or source.config.vault_id == dest.config.vault_id:
        raise ConfigError(f"source and destination are the same vault ({source.url}, id {source.config.vault_id})",
                          hint="copy to a vault in another location (another bucket, region or folder)")
    probe = source.keyring.seal(ObjType.RECORD, "copy-probe", _PROBE)
    try:
        same_key = dest.keyring.open(ObjType.RECORD, "copy-probe", probe) == _PROBE
    except IntegrityError:
        same_key = False
    if not same_key or source.keyring.chunk_id(_PROBE) != dest.keyring.chunk_id(_PROBE):
        raise ConfigError(f"destination vault {dest.url} has another master key than the source",
                          hint="a copy destination must be created from the source: "
                               "`seawall copy --from SRC --to DEST --init-dest` into an empty location")
    if source.config.chunker != dest.config.chunker:
        raise ConfigError(f"destination vault {dest.url} uses other chunker parameters than the source",
                          hint="create the destination with `seawall copy --init-dest`")


def prepare_destination(source: Vault, store: ObjectStore, passphrase: str, *, init: bool = False,
                        source_url: str | None = None, **options) -> Vault:
    """Open (or with `init`, create) the destination vault and check it fits the source.

    Raises:
        VaultNotInitialised: No vault at the destination and `init` is False (the hint says how).
        AuthError: Wrong destination passphrase.
        ConfigError: Same vault, another master key, or other chunker parameters.
    """
    if same_location(source.url, store.display_url):
        raise ConfigError(f"source and destination are the same vault ({source.url})",
                          hint="copy to a vault in another location (another bucket, region or folder)")
    try:
        Vault.read_config(store)
    except VaultNotInitialised:
        if not init:
            raise VaultNotInitialised(
                f"no seawall vault at the copy destination {store.display_url}",
                hint=f"create it from the source: seawall copy --from {source_url or source.url} "
                     f"--to {store.display_url} --init-dest") from None
        dest = init_destination(source, store, passphrase, **options)
    else:
        dest = Vault.open(store, passphrase)
    check_pair(source, dest)
    return dest


def check_binding(source: Vault, dest: Vault) -> None:
    """Refuse a destination whose WAL archive belongs to another cluster than the source's."""
    try:
        theirs = json.loads(dest.get_record(CLUSTER_KEY)).get("system_identifier")
        mine = json.loads(source.get_record(CLUSTER_KEY)).get("system_identifier")
    except ObjectNotFound:
        return
    if mine != theirs:
        raise ConfigError(f"destination {dest.url} archives WAL of cluster {theirs}, the source of cluster {mine}",
                          hint="copy into a destination dedicated to this source")
