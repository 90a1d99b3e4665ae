"""Error families and exit codes.

Every failure seawall reports is a `SeawallError` carrying one clear line (what went wrong, which
object, what to do) and the CLI exit code that goes with it. Two families matter to Prefect:
`RetryableError` (transient: network, throttling, timeouts, server restarts) and `PermanentError`
(retrying cannot help). Tasks retry only the first family; unknown exceptions count as permanent so a
bug is never retried into a pile of duplicate uploads.
"""

from __future__ import annotations

from seawall.redact import redact


class ExitCode:
    """Stable CLI exit codes (documented in README.md)."""

    OK = 0
    FAILURE = 1  # the job failed (transient errors that outlived their retries, unknown bugs)
    USAGE = 2  # bad arguments, configuration, credentials, missing/uninitialised vault
    INTEGRITY = 3  # data failed verification: corrupt, missing or forged objects
    PARTIAL = 4  # the job finished but skipped some items (listed in the output)
    BUSY = 5  # another process holds the vault lease
    CONTROL_FAILED = 6  # `seawall report`: a readiness control FAILED (with --strict: or was UNKNOWN)
    ABORT_RECOVERY = 126  # wal-get: not "missing" but broken; PostgreSQL aborts recovery above 125
    INTERRUPTED = 130  # SIGINT (Ctrl-C); SIGTERM exits 143: 128 + the signal number, as shells do
    TERMINATED = 143


class SeawallError(Exception):
    """Base for all project errors: one line of text and an exit code."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        """`exit_code` overrides the class's code for this error (fixed at creation, never changed later)."""
        # Redacted here, once for every surface: the CLI line, logs, Prefect state messages and
        # events all show str(error); SDK text appended to our words is covered too.
        message, hint = redact(message), (redact(hint) if hint else hint)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(message if not hint else f"{message} — {hint}")


class RetryableError(SeawallError):
    """Transient: network, throttling, timeouts, server restarts. Retrying may help."""


class PermanentError(SeawallError):
    """Retrying cannot help: auth, missing object, bad configuration, corrupt data."""


class IntegrityError(PermanentError):
    """Checksum, size, authentication tag or verification mismatch."""

    exit_code = ExitCode.INTEGRITY


class ConfigError(PermanentError):
    """Invalid block, flow parameters, URL or CLI arguments."""

    exit_code = ExitCode.USAGE


class AuthError(PermanentError):
    """Credentials were refused (wrong passphrase, access key, password or SSH key)."""

    exit_code = ExitCode.USAGE


class ObjectNotFound(PermanentError):
    """A key that must exist in a store does not."""


class ObjectArchived(PermanentError):
    """The object is in an archive storage class (GLACIER, DEEP_ARCHIVE) and must be retrieved first."""


class VaultNotInitialised(ConfigError):
    """The location holds no seawall vault."""


class VaultExists(ConfigError):
    """`init` was asked to create a vault where one already exists."""


class BackupNotFound(ConfigError):
    """No backup with that id (or no backup at all) in the vault."""


class NoSpaceError(PermanentError):
    """The target file system or bucket is full."""


class LeaseBusy(PermanentError):
    """Another process holds the vault lease.

    Permanent for Prefect: the lease itself already waited (`wait=`) before raising, so a task
    retry would only multiply that wait; the exit code (5) tells a scheduler to try again later.
    """

    exit_code = ExitCode.BUSY


class ConflictError(PermanentError):
    """An immutable object already exists with different content (e.g. a different WAL segment)."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT asked us to stop. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` swallows it: `finally` blocks still release leases and record the backup
    FAILED ("interrupted by SIGTERM")."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def stop_signal(exc: BaseException) -> int | None:
    """The signal number if `exc` is a request to stop (ours, Ctrl-C, or Prefect's TerminationSignal)."""
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return 2
    signum = getattr(exc, "signal", None)  # prefect.exceptions.TerminationSignal, without importing Prefect
    return signum if isinstance(signum, int) and not isinstance(exc, Exception) else None


def is_retryable(exc: BaseException) -> bool:
    """True only for errors seawall classified as transient."""
    return isinstance(exc, RetryableError)
