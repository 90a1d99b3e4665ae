"""The vault: one storage location holding packs of chunks, their index, manifests and the keyring.

`from seawall.vault import Vault, open_vault, init_vault` is the public entry point; the format
lives in the modules of this package: `config`, `packs` (pack files), `index` (index files and the
in-memory index), `cache` (local index cache), `packer` (writing packs), `reader` (ranged reads),
`chunks` (where a chunk is), `repair` (rebuilding the index from pack headers).
"""

from seawall.vault.chunks import chunk_key
from seawall.vault.config import CONFIG_KEY, VAULT_FORMAT, WRAPPER_KINDS, ChunkerParams, VaultConfig
from seawall.vault.core import CorruptManifest, Vault, init_vault, open_vault

__all__ = ["CONFIG_KEY", "VAULT_FORMAT", "WRAPPER_KINDS", "ChunkerParams", "CorruptManifest", "Vault", "VaultConfig",
           "chunk_key", "init_vault", "open_vault"]
