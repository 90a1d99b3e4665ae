"""Configuration models for what flows and tasks reach: vaults, PostgreSQL servers, SSH hosts, drills.

Plain pydantic models with the client factories (`open_vault()`, `get_store()`, `get_pgconn()`,
`ssh_options()` ...) and secrets as `SecretStr` (masked in repr, JSON and Prefect parameters).
The Prefect blocks in `blocks/` subclass them, adding only the block metadata, so a task works the
same with a block (Prefect mode, `VaultTarget.load("NAME")`) or a model built from a URL (plain
mode, no Prefect import). `.get_secret_value()` is called only inside the factories.
"""
