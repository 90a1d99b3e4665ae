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
# the postgres user cannot write, every call compiled them again: 93 ms per call instead of 48 here);
# flows/, tasks/ and deployments/ too: every backup and restore command imports them (~5 ms a process).
.venv/bin/python -m compileall -q -j 0 seawall flows tasks deployments >/dev/null
# build_lib SRC LIB OPT FALLBACK: compile a C file loaded with ctypes into the virtualenv, when missing
# or older than its source. Without a C compiler the Python side uses its fallback (slower, nothing fails).
build_lib() {
  local src=$1 lib=$2 opt=$3 fallback=$4
  if [ ! -f "$lib" ] || [ "$src" -nt "$lib" ]; then
    if ! { command -v cc >/dev/null 2>&1 \
           && cc "$opt" -shared -fPIC -Wall -o "$lib.tmp" "$src" && mv "$lib.tmp" "$lib"; }; then
      rm -f "$lib.tmp"
      echo "seawall setup: could not build $lib (no C compiler?): $fallback" >&2
    fi
  fi
}
# PostgreSQL page checksums in C (loaded by pgpages_native): ~0.05 CPU-s per GB of data directory
# against ~1 for the numpy port, the fallback (a physical backup then takes longer).
build_lib seawall/postgres/pgchecksum.c .venv/lib/libseawall_pgchecksum.so -O3 "page checksums use numpy"
# A tree restore's small files, created and written in C (loaded by files_native): one GIL release
# per 64 files instead of ~8 per file.
build_lib seawall/sources/restorefiles.c .venv/lib/libseawall_restorefiles.so -O2 \
  "restores write files from Python"
