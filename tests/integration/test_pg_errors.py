"""PostgreSQL failures on a real cluster: an optional fact skipped for want of privilege, but a lost
connection never hidden; a server that never answered is a configuration error, one that answered
before is retried."""

from __future__ import annotations

import psycopg
import pytest

from seawall.errors import ConfigError, RetryableError
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.tablestats import server_facts


def test_system_identifier_needs_privilege_and_is_skipped_without_it(pg_cluster) -> None:
    pg_cluster.execute('CREATE ROLE "plain user" LOGIN')
    # Some installations grant it to everyone; a hardened one (or pg_monitor-less role) does not.
    pg_cluster.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    with psycopg.connect(pg_cluster.conninfo(), user="plain user", autocommit=True) as pg:
        facts = server_facts(pg)
    assert facts["system_identifier"] is None and facts["dbname"] == "postgres"
    with pg_cluster.connect() as pg:
        assert server_facts(pg)["system_identifier"].isdigit()


def test_a_lost_connection_while_reading_facts_is_not_hidden(pg_cluster) -> None:
    # The session dies during the identifier query itself: a function shadowing pg_control_system
    # (search_path puts public first) terminates its own backend, as an admin or a crash would.
    pg_cluster.execute("""
        CREATE FUNCTION public.pg_control_system() RETURNS TABLE (system_identifier bigint)
        LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5);
        RETURN QUERY SELECT 1::bigint; END $$""")
    pg = psycopg.connect(pg_cluster.conninfo(), options="-c search_path=public,pg_catalog", autocommit=True)
    with pg, pytest.raises(RetryableError, match="terminating connection"), translate_psycopg_errors("facts"):
        server_facts(pg)


def test_dead_port_is_configuration_until_the_server_once_answered(pg_cluster) -> None:
    conn = PgConn(pg_cluster.conninfo() + " connect_timeout=3")
    conn.connect().close()  # it answered once in this process
    pg_cluster.stop("immediate")
    with pytest.raises(RetryableError, match="no server listens on that socket"):
        conn.connect()
    never = PgConn(pg_cluster.conninfo().replace(f"port={pg_cluster.port}", "port=1") + " host=127.0.0.1")
    with pytest.raises(ConfigError, match="connection refused"):
        never.connect()
