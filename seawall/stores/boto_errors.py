"""Translate botocore/boto3 exceptions into seawall's error families, in one place.

Every SDK call in `seawall.stores.s3` (and any other boto3 user) runs inside
`translate_boto_errors(what)`, in the style of httpx's `map_httpcore_exceptions()`: raw SDK
exceptions never leave the store. The table decides whether Prefect may retry:

- network trouble, timeouts, throttling, a body refused as damaged and any HTTP 5xx are `RetryableError`;
- a missing bucket, a bad bucket name, the wrong region or bad parameters are `ConfigError`;
- refused or missing credentials are `AuthError`;
- a missing key is `ObjectNotFound`; an archived object read before its retrieval, `ObjectArchived`;
- a storage class the endpoint does not offer is `ConfigError`;
- KMS: a disabled, deleted or denied key is `AuthError`, an unknown key `ConfigError`, a ciphertext
  KMS refuses (damaged, or another vault's) `IntegrityError`, KMS throttling/outages `RetryableError`;
- a checksum mismatch on download is `IntegrityError`;
- anything else from the SDK is `PermanentError`, so a bug is never retried into duplicate uploads.

Other exceptions (our own `SeawallError`s, programming errors) pass through untouched.
Every message is one line: what was being done (bucket/key), what S3 said, and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from boto3.exceptions import Boto3Error
from botocore import exceptions as bce

from seawall.errors import (
    AuthError,
    ConfigError,
    IntegrityError,
    ObjectArchived,
    ObjectNotFound,
    PermanentError,
    RetryableError,
    SeawallError,
)
from seawall.reach import mark_reached, unreachable

__all__ = ["classify_boto_error", "error_code", "http_status", "translate_boto_errors"]

# S3 error codes: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        # A conflicting operation on the same bucket/key is in flight; AWS says to retry.
        "OperationAborted",
        # Two concurrent `If-None-Match: *` writes: the loser of the race gets 409 and should retry
        # (the retry then sees 412). https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
        "ConditionalRequestConflict",
        # S3 refused a body that does not match its checksum (x-amz-checksum-sha256, Content-MD5)
        # or its signed payload hash: damage in transit, nothing was stored, so sending it again is
        # safe; a client bug would fail every attempt and end as an error all the same.
        "BadDigest",
        "XAmzContentSHA256Mismatch",
    }
)
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
# The bucket exists but in another region: the URL's ?region= is wrong.
_WRONG_REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_CONFIG_CODES = frozenset(
    {"InvalidBucketName", "InvalidArgument", "InvalidRequest", "InvalidLocationConstraint", "BucketAlreadyExists"}
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
# S3 refuses a storage class it does not offer (an S3-compatible server may offer fewer than AWS).
_STORAGE_CLASS_CODES = frozenset({"InvalidStorageClass"})
# An archived object (GLACIER, DEEP_ARCHIVE) read before a restore made it readable.
_ARCHIVED_CODES = frozenset({"InvalidObjectState"})

# KMS error codes (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html and each
# action's Errors section): (seawall class, hint). Checked before the S3 rows: KMS answers most of
# these with HTTP 400, and its hints differ from a bucket's.
_KMS_FIX_KEY = "enable the key in KMS (or cancel its deletion), or unlock with another key wrapper"
_KMS_CODES: dict[str, tuple[type[SeawallError], str]] = {
    "DisabledException": (AuthError, _KMS_FIX_KEY),
    "KMSInvalidStateException": (AuthError, _KMS_FIX_KEY),
    "AccessDeniedException": (AuthError, "allow kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key "
                              "for these credentials (key policy or IAM)"),
    "NotFoundException": (ConfigError, "check the key id; a key id that is not an ARN is looked up in one "
                          "region: give the key's full ARN or its region"),
    "InvalidKeyUsageException": (ConfigError, "use a symmetric ENCRYPT_DECRYPT key"),
    "InvalidCiphertextException": (IntegrityError, "the key wrapper was damaged or copied from another vault: "
                                   "remove it (`seawall key remove`) and add a new one"),
    "IncorrectKeyException": (IntegrityError, "the key wrapper's ciphertext belongs to another KMS key"),
    "InvalidArnException": (ConfigError, "check the key ARN"),
    "UnsupportedOperationException": (ConfigError, "use a symmetric ENCRYPT_DECRYPT key"),
    "KMSInternalException": (RetryableError, "transient; retry later"),
    "DependencyTimeoutException": (RetryableError, "transient; retry later"),
    "KeyUnavailableException": (RetryableError, "the key is unavailable for now; retry later"),
    "LimitExceededException": (RetryableError, "KMS request quota reached; retry later"),
    "ThrottlingException": (RetryableError, "KMS throttled the request; retry later"),
}

_CHECK_URL = "check the vault URL or run `seawall init`"
_CHECK_CREDS = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile, and the bucket policy"
_NO_CREDS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile (?profile= or AWS_PROFILE)"
_WILL_RETRY = "transient; retry later (Prefect tasks retry this automatically)"


def error_code(exc: bce.ClientError) -> str:
    """The S3 error code of a ClientError ('' if the response had none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: bce.ClientError) -> int:
    """The HTTP status of a ClientError's response (0 if unknown)."""
    try:
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    except (TypeError, ValueError):
        return 0


def _one_line(text: object, limit: int = 200) -> str:
    """SDK messages may span lines or be long; our errors are one line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _classify_client_error(exc: bce.ClientError, what: str) -> SeawallError:
    code, status = error_code(exc), http_status(exc)
    said = _one_line(exc.response.get("Error", {}).get("Message") or code or f"HTTP {status}")
    detail = f"{what}: {said} ({code or status})"
    if code in _KMS_CODES:
        family, hint = _KMS_CODES[code]
        return family(detail, hint=hint)
    if code in _STORAGE_CLASS_CODES:
        return ConfigError(detail, hint="the endpoint does not offer this storage class: pick another "
                           "?storage_class= in the vault URL (or none for the bucket default)")
    if code in _ARCHIVED_CODES:
        return ObjectArchived(f"{what}: the object is in an archive storage class and not restored ({code})",
                              hint="run the restore again: seawall requests the retrieval and waits for it")
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        return RetryableError(detail, hint=_WILL_RETRY)
    # HEAD responses carry no body, so a missing bucket on HeadBucket is a bare 404.
    if code == "NoSuchBucket" or (exc.operation_name == "HeadBucket" and status == 404):
        return ConfigError(f"{what}: the bucket does not exist ({code or status})", hint=_CHECK_URL)
    if code in _WRONG_REGION_CODES or status == 301:
        return ConfigError(detail, hint="the bucket is in another region: fix ?region= in the vault URL")
    if code == "RequestTimeTooSkewed":
        return ConfigError(detail, hint="the system clock is wrong: synchronise it (NTP)")
    if code == "ExpiredToken":
        return AuthError(detail, hint="the session token expired: refresh the credentials")
    if code in _AUTH_CODES or status == 403:
        return AuthError(detail, hint=_CHECK_CREDS)
    if code in _NOT_FOUND_CODES or status == 404:
        return ObjectNotFound(f"{what}: not found ({code or status})")
    if code in _CONFIG_CODES:
        return ConfigError(detail, hint="check the bucket name and options in the vault URL")
    return PermanentError(detail)


def classify_boto_error(exc: BaseException, what: str) -> SeawallError | None:
    """The seawall error for an SDK exception, or None if `exc` is not from botocore/boto3.

    Args:
        exc: The exception raised by a boto3/botocore call.
        what: What was being done, naming the bucket and key (e.g. "reading s3://b/p/key").

    Returns:
        A new SeawallError (not raised), or None for exceptions this table does not own.
    """
    if isinstance(exc, bce.ClientError):
        return _classify_client_error(exc, what)
    if not isinstance(exc, bce.BotoCoreError | Boto3Error):
        return None
    said = _one_line(exc)
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return AuthError(f"{what}: {said}", hint=_NO_CREDS)
    if isinstance(exc, bce.ProfileNotFound | bce.ConfigParseError):
        return ConfigError(f"{what}: {said}", hint="check AWS_CONFIG_FILE and the profile name")
    if isinstance(exc, bce.SSLError):
        # Checked before ConnectionError (its base): a bad certificate does not heal by retrying.
        return ConfigError(f"{what}: {said}", hint="check the endpoint URL and the CA bundle (AWS_CA_BUNDLE)")
    if isinstance(exc, bce.ConnectionError | bce.HTTPClientError | bce.IncompleteReadError):
        # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError (ConnectionError);
        # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError (HTTPClientError).
        return RetryableError(f"{what}: {said}", hint=_WILL_RETRY)
    if isinstance(exc, bce.FlexibleChecksumError | bce.ChecksumError):
        return IntegrityError(f"{what}: {said}", hint="the object is corrupt in the store: run `seawall verify`")
    if isinstance(exc, bce.ParamValidationError | bce.ValidationError | bce.NoRegionError | bce.InvalidDNSNameError):
        return ConfigError(f"{what}: {said}", hint="check the bucket name and region in the vault URL")
    return PermanentError(f"{what}: {said}")


@contextlib.contextmanager
def translate_boto_errors(what: str, *, endpoint: str | None = None) -> Iterator[None]:
    """Re-raise botocore/boto3 exceptions from the block as seawall errors (chained with `from`).

    Args:
        what: What the block does, naming bucket and key; it starts every error message.
        endpoint: The S3 endpoint called: a refused connection or unknown host before it ever
            answered is a ConfigError (exit 2 at once, `seawall.reach`), later a RetryableError.

    Example:
        >>> with translate_boto_errors("reading s3://bucket/vault/config"):  # doctest: +SKIP
        ...     client.get_object(Bucket="bucket", Key="vault/config")
    """
    try:
        yield
    except (bce.BotoCoreError, bce.ClientError, Boto3Error) as exc:
        if endpoint is not None and isinstance(exc, bce.EndpointConnectionError):
            first = unreachable(endpoint, exc, what, hint="check the endpoint's host and port in the vault URL")
            if first is not None:
                raise first from exc
        elif endpoint is not None and isinstance(exc, bce.ClientError):
            mark_reached(endpoint)  # S3 answered, if only to refuse
        translated = classify_boto_error(exc, what)
        if translated is None:  # pragma: no cover - the except clause only admits SDK errors
            raise
        raise translated from exc
    if endpoint is not None:
        mark_reached(endpoint)
