"""Prefect flows: composition only. Each flow body reads like its DAG diagram."""

from seawall.redact import install_logging

install_logging()  # log records (and so Prefect's API logs) are redacted wherever flows run
