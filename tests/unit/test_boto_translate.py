"""The botocore → seawall error table, checked row by row with real botocore exception classes."""

from __future__ import annotations

import pytest
from boto3.exceptions import S3UploadFailedError
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
from seawall.stores.boto_errors import translate_boto_errors

WHAT = "reading s3://my-bucket/vault/chunks/ab"


def client_error(code: str, status: int, operation: str = "GetObject", message: str = "S3 said so") -> bce.ClientError:
    """A ClientError shaped like the ones botocore builds from an S3 error response."""
    error = {"Code": code, "Message": message} if code else {}
    return bce.ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


TABLE = [
    # network and timeouts: transient
    (bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), RetryableError),
    (bce.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), RetryableError),
    (bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), RetryableError),
    (bce.ConnectionClosedError(endpoint_url="http://127.0.0.1:9"), RetryableError),
    (bce.ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"), RetryableError),
    (bce.ResponseStreamingError(error="connection reset"), RetryableError),
    (bce.IncompleteReadError(actual_bytes=10, expected_bytes=20), RetryableError),
    # throttling and server trouble: transient
    (client_error("SlowDown", 503), RetryableError),
    (client_error("RequestTimeout", 400), RetryableError),
    (client_error("InternalError", 500), RetryableError),
    (client_error("ServiceUnavailable", 503), RetryableError),
    (client_error("Throttling", 400), RetryableError),
    (client_error("ConditionalRequestConflict", 409, "PutObject"), RetryableError),
    # a body damaged on the way: refused by S3 (nothing stored), safe to send again
    (client_error("BadDigest", 400, "PutObject"), RetryableError),
    (client_error("XAmzContentSHA256Mismatch", 400, "PutObject"), RetryableError),
    (client_error("InvalidDigest", 400, "PutObject"), PermanentError),
    (client_error("", 502), RetryableError),
    (client_error("SomethingNew", 504), RetryableError),
    (client_error("", 429), RetryableError),
    # configuration
    (client_error("NoSuchBucket", 404), ConfigError),
    (client_error("", 404, "HeadBucket"), ConfigError),
    (client_error("InvalidBucketName", 400, "CreateBucket"), ConfigError),
    (client_error("PermanentRedirect", 301), ConfigError),
    (client_error("AuthorizationHeaderMalformed", 400), ConfigError),
    (client_error("RequestTimeTooSkewed", 403), ConfigError),
    (client_error("BucketAlreadyExists", 409, "CreateBucket"), ConfigError),
    (bce.ParamValidationError(report="Invalid bucket name"), ConfigError),
    (bce.ProfileNotFound(profile="nightly"), ConfigError),
    (bce.NoRegionError(), ConfigError),
    (bce.SSLError(endpoint_url="https://s3.local", error="certificate verify failed"), ConfigError),
    # credentials
    (client_error("AccessDenied", 403), AuthError),
    (client_error("InvalidAccessKeyId", 403), AuthError),
    (client_error("SignatureDoesNotMatch", 403), AuthError),
    (client_error("ExpiredToken", 400), AuthError),
    (client_error("", 403, "HeadObject"), AuthError),
    (bce.NoCredentialsError(), AuthError),
    (bce.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), AuthError),
    # missing objects
    (client_error("NoSuchKey", 404), ObjectNotFound),
    (client_error("", 404, "HeadObject"), ObjectNotFound),
    # corrupt downloads
    (bce.FlexibleChecksumError(error_msg="expected abc, got def"), IntegrityError),
    # storage classes: one the endpoint does not offer; an archived object read before its retrieval
    (client_error("InvalidStorageClass", 400, "PutObject"), ConfigError),
    (client_error("InvalidObjectState", 403, "GetObject"), ObjectArchived),
    # KMS (mostly HTTP 400): the key's state and policy, unknown keys, refused ciphertexts, outages
    (client_error("DisabledException", 400, "Decrypt"), AuthError),
    (client_error("KMSInvalidStateException", 400, "Decrypt"), AuthError),
    (client_error("AccessDeniedException", 400, "DescribeKey"), AuthError),
    (client_error("NotFoundException", 400, "DescribeKey"), ConfigError),
    (client_error("InvalidKeyUsageException", 400, "Encrypt"), ConfigError),
    (client_error("InvalidArnException", 400, "Encrypt"), ConfigError),
    (client_error("InvalidCiphertextException", 400, "Decrypt"), IntegrityError),
    (client_error("IncorrectKeyException", 400, "Decrypt"), IntegrityError),
    (client_error("KMSInternalException", 500, "Decrypt"), RetryableError),
    (client_error("DependencyTimeoutException", 503, "Decrypt"), RetryableError),
    (client_error("KeyUnavailableException", 500, "Decrypt"), RetryableError),
    (client_error("ThrottlingException", 400, "Decrypt"), RetryableError),
    (client_error("LimitExceededException", 400, "Encrypt"), RetryableError),
    # anything else is permanent, so a bug is never retried
    (client_error("MalformedXML", 400, "PutObject"), PermanentError),
    (client_error("", 412, "PutObject"), PermanentError),
    (bce.UnknownServiceError(service_name="s4", known_service_names="s3"), PermanentError),
    (S3UploadFailedError("upload failed"), PermanentError),
]


def _id(row: tuple[BaseException, type]) -> str:
    exc = row[0]
    if isinstance(exc, bce.ClientError):
        code = exc.response["Error"].get("Code") or exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return f"ClientError-{code}-{exc.operation_name}"
    return type(exc).__name__


@pytest.mark.parametrize(("exc", "expected"), TABLE, ids=[_id(row) for row in TABLE])
def test_translation_table(exc: BaseException, expected: type[SeawallError]) -> None:
    with pytest.raises(SeawallError) as info, translate_boto_errors(WHAT):
        raise exc
    # exact class: e.g. ConfigError must not silently become its parent PermanentError
    assert type(info.value) is expected
    assert info.value.__cause__ is exc
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(WHAT + ":")


def test_retryable_is_not_permanent() -> None:
    with pytest.raises(RetryableError) as info, translate_boto_errors(WHAT):
        raise client_error("SlowDown", 503)
    assert not isinstance(info.value, PermanentError)


@pytest.mark.parametrize(
    ("exc", "advice"),
    [
        (client_error("NoSuchBucket", 404), "seawall init"),
        (bce.NoCredentialsError(), "AWS_ACCESS_KEY_ID"),
        (client_error("AccessDenied", 403), "AWS_ACCESS_KEY_ID"),
        (client_error("PermanentRedirect", 301), "region"),
        (client_error("DisabledException", 400, "Decrypt"), "enable the key"),
        (client_error("AccessDeniedException", 400, "Decrypt"), "kms:Decrypt"),
        (client_error("InvalidStorageClass", 400, "PutObject"), "storage_class"),
    ],
)
def test_messages_say_what_to_do(exc: BaseException, advice: str) -> None:
    with pytest.raises(SeawallError, match=advice), translate_boto_errors(WHAT):
        raise exc


def test_multiline_sdk_messages_become_one_line() -> None:
    with pytest.raises(PermanentError) as info, translate_boto_errors(WHAT):
        raise client_error("Weird", 400, message="line one\nline two\n\tline three")
    assert "\n" not in str(info.value)
    assert "line one line two line three" in str(info.value)


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("k"), ObjectNotFound("ours already")])
def test_other_exceptions_pass_through(exc: Exception) -> None:
    with pytest.raises(type(exc)) as info, translate_boto_errors(WHAT):
        raise exc
    assert info.value is exc
