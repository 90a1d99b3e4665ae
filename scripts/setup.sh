#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (root, Python 3.11): Debian packages, uv, and the
# locked Python environment in .venv. Called by `make demo` and `make test`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server binaries (tests and demo run throwaway clusters), OpenSSH server (SSH tests),
# MariaDB server + mariadb-backup and Redis server (their sources' tests start private servers);
# attr and acl (getfattr/getfacl: the tree-fidelity test compares with them); pgbackrest (2.45 in
# Debian 12: the peer bench/pg_bench.py and bench/pg_phys_bench.py measure against).
APT_PACKAGES=(postgresql postgresql-contrib openssh-server mariadb-server mariadb-backup mariadb-client
              redis-server redis-tools attr acl pgbackrest)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "seawall setup: please install: ${missing[*]} (apt-get install as root)" >&2
    exit 2
  fi
  echo "seawall setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d stops Debian from starting system-wide services we do not want running.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "seawall setup: installing uv" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv 2>/dev/null \
    || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi
# The venv's interpreter must be runnable by the `postgres` OS user (archive_command and
# restore_command run `seawall wal-push/wal-get` as that user), so prefer Debian's python3.11 over
# an interpreter under /root (mode 0700). An existing venv on another interpreter is rebuilt.
python_args=()
if [ -x /usr/bin/python3.11 ]; then
  python_args=(--python /usr/bin/python3.11)
fi
uv sync --frozen --quiet "${python_args[@]}"
# archive_command runs `seawall wal-push` once per WAL segment as the postgres user: byte-compile the
# project's own modules (an editable install ships none, and with PYTHONDONTWRITEBYTECODE or a tree
# the postgres user cannot write, every call compiled them again: 93 ms per call instead of 48 here).
.venv/bin/python -m compileall -q -j 0 seawall >/dev/null
# PostgreSQL page checksums in C (seawall/postgres/pgchecksum.c, loaded by pgpages_native with ctypes):
# ~0.05 CPU-s per GB of data directory against ~1 for the numpy port, which stays the fallback when
# no C compiler is there (a physical backup then takes longer, nothing fails).
pgck_src=seawall/postgres/pgchecksum.c
pgck_lib=.venv/lib/libseawall_pgchecksum.so
if [ ! -f "$pgck_lib" ] || [ "$pgck_src" -nt "$pgck_lib" ]; then
  if ! { command -v cc >/dev/null 2>&1 \
         && cc -O3 -shared -fPIC -Wall -o "$pgck_lib.tmp" "$pgck_src" && mv "$pgck_lib.tmp" "$pgck_lib"; }; then
    rm -f "$pgck_lib.tmp"
    echo "seawall setup: could not build $pgck_lib (no C compiler?): page checksums use numpy" >&2
  fi
fi
# A tree restore's small files, created and written in C (seawall/sources/restorefiles.c, loaded by
# files_native with ctypes): one GIL release per 64 files instead of ~8 per file. Without a compiler
# the restore writes them from Python (slower, nothing fails).
rf_src=seawall/sources/restorefiles.c
rf_lib=.venv/lib/libseawall_restorefiles.so
if [ ! -f "$rf_lib" ] || [ "$rf_src" -nt "$rf_lib" ]; then
  if ! { command -v cc >/dev/null 2>&1 \
         && cc -O2 -shared -fPIC -Wall -o "$rf_lib.tmp" "$rf_src" && mv "$rf_lib.tmp" "$rf_lib"; }; then
    rm -f "$rf_lib.tmp"
    echo "seawall setup: could not build $rf_lib (no C compiler?): restores write files from Python" >&2
  fi
fi
