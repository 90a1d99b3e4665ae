"""S3 object store (boto3, sync): a vault is one bucket + prefix in one region.

URL form: `s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:5000&profile=NAME`.
Credentials come from the standard AWS chain (env, profile, instance role) or are passed in
explicitly; they never appear in `display_url`, `repr` or error messages.

Every SDK call runs inside `translate_boto_errors`, so callers only ever see seawall errors.
Writes carry one client-side checksum, SHA-256 (`x-amz-checksum-sha256`, announced by
`x-amz-sdk-checksum-algorithm`), which S3 checks before storing the object and keeps with it; reads
ask for it back and botocore checks the bytes against it. Conditional creates use `If-None-Match: *`
(S3 conditional writes, GA since August 2024).

Beside this module: the client and its settings (`s3_client`), URLs and options (`s3_url`),
background pack uploads (`s3_uploads`), Object Lock (`s3_lock`), storage classes and lifecycle
rules (`s3_tiers`), checksums (`s3_checksums`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3.session
from botocore.exceptions import ClientError
from pydantic import SecretStr

from seawall.errors import ConfigError, ObjectNotFound, PermanentError, RetryableError
from seawall.keys import is_valid_key, validate_key
from seawall.redact import add_secret, add_url_secret
from seawall.stores import s3_client
from seawall.stores.base import ObjectInfo, ObjectStore
from seawall.stores.boto_errors import error_code, http_status, translate_boto_errors
from seawall.stores.s3_checksums import Fetched, checked_sha256, md5_etag, sha256_b64
from seawall.stores.s3_lock import S3LockMixin
from seawall.stores.s3_tiers import S3TiersMixin, is_bulk, normalise_class
from seawall.stores.s3_uploads import S3BackgroundPuts
from seawall.stores.s3_url import check_endpoint, check_options, parse_s3_url

__all__ = ["Fetched", "S3Store", "from_url", "parse_s3_url"]

_LOCK_MODES = frozenset({"GOVERNANCE", "COMPLIANCE"})
_DEFAULT_REGION = "us-east-1"


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


class S3Store(S3BackgroundPuts, S3TiersMixin, S3LockMixin, ObjectStore):
    """Objects live under `s3://bucket/prefix/`; keys map to `prefix/` + key.

    Args:
        bucket: Bucket name.
        prefix: Folder inside the bucket ('' for the bucket root).
        region: Bucket region; defaults to the session's region, else us-east-1.
        endpoint: Endpoint URL for S3-compatible services and moto (None for AWS).
        profile: AWS profile name from the shared config files.
        access_key_id: Explicit access key (otherwise the standard AWS chain is used).
        secret_access_key: Explicit secret key (str or SecretStr).
        session_token: Explicit session token (str or SecretStr).
        session: A ready boto3 Session; takes precedence over profile and explicit keys.
        object_lock_mode: "GOVERNANCE" or "COMPLIANCE" to lock every object written.
        object_lock_days: Retention period in days for `object_lock_mode`.
        storage_class: Storage class for bulk objects (chunks), e.g. GLACIER_IR; None for the
            bucket default. Metadata (config, keys, manifests, WAL) stays in the default class.

    Example:
        >>> store = S3Store("my-bucket", "vault", region="eu-west-1")  # doctest: +SKIP
        >>> store.put("config", b"...")  # doctest: +SKIP
    """

    pack_size = 32 << 20  # tens of MiB: fewer PUTs and LIST entries (bench/PACKS.md)
    remote = True
    read_ahead = 4 << 20

    put_returns_md5 = True  # a single-part PUT's ETag is the MD5 S3 computed over the stored bytes

    #: Keys per ListObjectsV2 page (S3's maximum is 1000); tests shrink it to exercise paging.
    list_page_size: int = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | SecretStr | None = None,
        session_token: str | SecretStr | None = None,
        session: boto3.session.Session | None = None,
        object_lock_mode: str | None = None,
        object_lock_days: int | None = None,
        storage_class: str | None = None,
    ):
        prefix = prefix.strip("/")
        if not bucket:
            raise ConfigError("S3 vault URL has no bucket", hint="use s3://bucket/prefix?region=...")
        if prefix and not is_valid_key(prefix):
            raise ConfigError(f"invalid S3 prefix {prefix!r}", hint="use ASCII letters, digits and ._-/ only")
        check_endpoint(endpoint)
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigError("S3 credentials need both access_key_id and secret_access_key")
        if object_lock_mode is not None or object_lock_days is not None:
            object_lock_mode = (object_lock_mode or "").upper()
            if object_lock_mode not in _LOCK_MODES or not object_lock_days or object_lock_days < 1:
                raise ConfigError(
                    f"invalid object lock settings ({object_lock_mode}, {object_lock_days} days)",
                    hint="use object_lock_mode GOVERNANCE or COMPLIANCE with object_lock_days >= 1",
                )
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.profile = profile
        self.object_lock_mode = object_lock_mode
        self.object_lock_days = object_lock_days
        add_secret(secret_access_key)
        add_secret(session_token)
        add_url_secret(endpoint)
        self.storage_class = normalise_class(storage_class)
        self._access_key_id = access_key_id
        self._secret_access_key = _secret(secret_access_key)
        self._session_token = _secret(session_token)
        self._session = session
        self.region = region or (session.region_name if session else None) or _DEFAULT_REGION
        self._client: Any = None
        self._lock = threading.Lock()
        self._init_background()
        self.display_url = self._make_display_url()

    # ---- plumbing -----------------------------------------------------------------------------
    def _make_display_url(self) -> str:
        from seawall.stores import redact_url

        # The endpoint is redacted on its own: redact_url only looks at the s3:// netloc.
        query = f"region={self.region}" + (f"&endpoint={redact_url(self.endpoint)}" if self.endpoint else "")
        return redact_url(f"s3://{self.bucket}/{self.prefix}?{query}")

    def _new_session(self) -> boto3.session.Session:
        return s3_client.new_session(self._session, self.profile, self.region, self._access_key_id,
                                     self._secret_access_key, self._session_token)

    @property
    def client(self) -> Any:
        """The boto3 S3 client, built on first use (clients are thread-safe; sessions are not)."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                config = s3_client.client_config(self.endpoint)
                with translate_boto_errors(f"connecting to {self.display_url}"):  # no contact yet
                    self._client = self._new_session().client(
                        "s3", region_name=self.region, endpoint_url=self.endpoint, config=config
                    )
            return self._client

    def _translate(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translate_boto_errors(what, endpoint=self.endpoint or f"s3.{self.region}.amazonaws.com")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _what(self, verb: str, key: str) -> str:
        return f"{verb} s3://{self.bucket}/{self._key(key)}"

    def _put_args(self, key: str, data: bytes, sha256: str | None = None) -> dict[str, Any]:
        # One checksum, not two: S3 checks the SHA-256 before storing the object and keeps it for
        # reads to check against. `ChecksumAlgorithm` sends x-amz-sdk-checksum-algorithm, which
        # Object Lock accepts in place of Content-MD5 and which tells S3-compatibles (moto) to keep
        # the value. https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
        # Content-MD5 is left out on purpose: it cost 2-3x the SHA-256 per byte (bench/COPY.md).
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": sha256 or sha256_b64(data),
        }
        if self.storage_class and is_bulk(key):
            args["StorageClass"] = self.storage_class
        if self.object_lock_mode:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=self.object_lock_days)
        return args

    # ---- ObjectStore ----------------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> None:
        with self._translate(self._what("writing", key)):
            self.client.put_object(**self._put_args(key, data))

    def put_etag(self, key: str, data: bytes, *, sha256: str | None = None) -> str | None:
        """`put`; returns the MD5 S3 computed over what it stored (the ETag), or None if the ETag is no MD5.

        Args:
            key: Object key.
            data: The bytes to store.
            sha256: Their base64 SHA-256 if already known and checked (e.g. `Fetched.sha256` of the
                same bytes), so they are not hashed again; computed here otherwise.
        """
        args = self._put_args(validate_key(key), data, sha256)
        with self._translate(self._what("writing", key)):
            response = self.client.put_object(**args)
        return md5_etag(response)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `If-None-Match: *`; False when S3 answers 412 (it already exists).

        If a first attempt succeeded but its response was lost, botocore's retry sees the
        object it just wrote and gets 412: callers that must tell "mine" from "someone else's"
        (leases) compare the stored content.
        """
        with self._translate(self._what("creating", key)):
            try:
                self.client.put_object(IfNoneMatch="*", **self._put_args(key, data))
            except ClientError as exc:
                if error_code(exc) == "PreconditionFailed" or http_status(exc) == 412:
                    return False
                raise
        return True

    def _get(self, key: str) -> bytes:
        return self._fetch(key).data

    def fetch(self, key: str) -> Fetched:
        """`get`, with the MD5 S3 holds for the object and the SHA-256 botocore checked the bytes against."""
        return self._fetch(validate_key(key))

    def _fetch(self, key: str) -> Fetched:
        what = self._what("reading", key)
        with self._translate(what):
            # ChecksumMode makes botocore check the stored SHA-256 on download (where S3 has it).
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
            body = response["Body"]
            # Not `with response["Body"] as body`: StreamingBody.__enter__ returns the raw urllib3
            # stream, and reading that skips botocore's checksum check. A whole read() of the body
            # itself checks the checksum at its end.
            try:
                data = body.read()
            finally:
                body.close()
        expected = response.get("ContentLength")
        if expected is not None and expected != len(data):
            raise RetryableError(f"{what}: short read ({len(data)} of {expected} bytes)", hint="retry")
        return Fetched(data, md5_etag(response), checked_sha256(body))

    def _get_range(self, key: str, offset: int, length: int) -> bytes:
        """A ranged GET (no stored checksum to check: S3 keeps it for the whole object only)."""
        if not length:
            self._stat_or_raise(key)
            return b""
        what = self._what("reading", key)
        with translate_boto_errors(what):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                                  Range=f"bytes={offset}-{offset + length - 1}")
            except ClientError as exc:
                if error_code(exc) != "InvalidRange":  # the range starts past the end
                    raise
                return b""
            with response["Body"] as body:
                data = body.read()
        if len(data) != response.get("ContentLength", len(data)):
            raise RetryableError(f"{what}: short read ({len(data)} of {response['ContentLength']} bytes)")
        return data

    def _stat_or_raise(self, key: str) -> None:
        if self._stat(key) is None:
            raise ObjectNotFound(f"object {self._what('reading', key)} not found")

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            with self._translate(self._what("checking", key)):
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = self._key("")  # "prefix/" or ""
        with self._translate(f"listing s3://{self.bucket}/{root}{prefix}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=root + prefix, PaginationConfig={"PageSize": self.list_page_size}
            ):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(root) :], int(obj["Size"]), obj["LastModified"].timestamp(),
                                     obj.get("StorageClass"))

    def _delete(self, key: str) -> None:
        try:
            with self._translate(self._what("deleting", key)):
                self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:  # S3 itself answers 204, but S3-compatibles may say NoSuchKey
            pass

    def delete_many(self, keys: list[str]) -> None:
        """Delete keys with DeleteObjects, 1000 per request (S3's limit); missing keys count as deleted.

        https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
        """
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(validate_key(k))} for k in keys[start:start + 1000]]
            with self._translate(f"deleting {len(batch)} objects in {self.display_url}"):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise PermanentError(f"deleting s3://{self.bucket}/{errors[0]['Key']}: {errors[0].get('Message')} "
                                     f"({errors[0].get('Code')}; {len(errors)} keys failed)")

    # ---- bucket management ----------------------------------------------------------------------
    def check_bucket(self) -> None:
        """Raise ConfigError if the bucket does not exist (AuthError if we may not see it)."""
        with self._translate(f"opening {self.display_url}"):
            self.client.head_bucket(Bucket=self.bucket)

    def create_bucket(self) -> None:
        """Create the bucket in `region` if it is missing (with Object Lock if configured)."""
        args: dict[str, Any] = {"Bucket": self.bucket}
        # us-east-1 is the default location and S3 rejects it as an explicit LocationConstraint.
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        if self.object_lock_mode:
            args["ObjectLockEnabledForBucket"] = True
        with self._translate(f"creating bucket {self.display_url}"):
            try:
                self.client.create_bucket(**args)
            except ClientError as exc:
                if error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    # ---- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop_background()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __getstate__(self) -> dict[str, Any]:
        # Live clients, sessions and locks cannot cross process boundaries (Prefect results,
        # multiprocessing); the copy rebuilds its client from the settings on first use. A passed-in
        # Session is dropped too: the copy falls back to its profile or the standard AWS chain.
        state = self.__dict__.copy()
        state["_client"] = None
        state["_lock"] = None
        self._drop_background(state)
        if self._session is not None:
            state["profile"] = self.profile or self._session.profile_name
            state["_session"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._init_background()


def from_url(url: str, *, create: bool = False, **options: Any) -> S3Store:
    """Open an S3 vault URL; with `create=True` make the bucket if it is missing.

    Args:
        url: `s3://bucket/prefix?region=...&endpoint=...&profile=...`.
        create: Create the bucket (in the URL's region) if it does not exist.
        **options: Further S3Store keyword arguments (credentials, session, object lock).

    Raises:
        ConfigError: Bad URL or options, or the bucket does not exist and `create` is False.
    """
    check_options(options)
    store = S3Store(**parse_s3_url(url), **options)
    try:
        if create:
            store.create_bucket()
        store.check_bucket()
        if create:  # init and --init-dest: a class the endpoint refuses stops before anything is written
            store.check_storage_class()
    except BaseException:
        store.close()
        raise
    return store
