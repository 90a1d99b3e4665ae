"""The vault's plain `config` object: format, version, vault id, chunker parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from seawall.errors import IntegrityError

CONFIG_KEY = "config"
VAULT_FORMAT = "seawall-vault"
WRAPPER_KINDS = ("passphrase", "kms")


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 256 << 10
    avg_size: int = 1 << 20
    max_size: int = 4 << 20


@dataclass
class VaultConfig:
    vault_id: str
    created: str
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    version: int = 2  # 2: chunks in packs (v1 vaults: loose chunk objects, still read)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": VAULT_FORMAT,
                "version": self.version,
                "vault_id": self.vault_id,
                "created": self.created,
                "chunker": self.chunker.__dict__,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> VaultConfig:
        try:
            raw = json.loads(data)
            if raw.get("format") != VAULT_FORMAT:
                raise ValueError("not a seawall vault config")
            return cls(
                vault_id=raw["vault_id"],
                created=raw["created"],
                chunker=ChunkerParams(**raw["chunker"]),
                version=int(raw["version"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"vault config at {where} is unreadable: {exc}") from None
