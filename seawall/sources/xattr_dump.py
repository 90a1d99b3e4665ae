"""Extended attributes over SSH: `getfattr` dumps read on the host, `setfattr --restore` dumps written.

SFTP has no call for extended attributes, so a host that allows commands is asked with one
`getfattr -R` for the whole tree (ACLs included: they are the system.posix_acl_* attributes), and
a restore sends one dump to `setfattr --restore=-`. The dump format (attr(1)): `# file: PATH`
lines, then `name=0sBASE64` lines, a blank line between files; names and paths escape bytes as
`\\ooo` octal.
"""

from __future__ import annotations

import re
import shlex

from seawall.sources.tree import Entry
from seawall.ssh import RemoteSession

_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(text: bytes) -> str:
    raw = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), text)
    return raw.decode("utf-8", "surrogateescape")


def _escape(text: str) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 <= b < 0x7f and b != 0x5c else f"\\{b:03o}" for b in raw)


def parse_dump(dump: bytes, root: str) -> dict[str, dict[str, str]]:
    """{relative path ('.' for the root): {name: base64 value}} from a `getfattr -e base64` dump."""
    prefix = root.rstrip("/") + "/"
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in dump.split(b"\n"):
        if line.startswith(b"# file: "):
            path = _unescape(line[len(b"# file: "):])
            rel = "." if path.rstrip("/") == root.rstrip("/") else path.removeprefix(prefix)
            current = out.setdefault(rel, {})
        elif line and current is not None and not line.startswith(b"#"):
            name, _, value = line.partition(b"=")
            text = value.decode("ascii", "replace")
            current[_unescape(name)] = text[2:] if text.startswith("0s") else ""
    return {path: attrs for path, attrs in out.items() if attrs}


def read_remote(session: RemoteSession, root: str) -> tuple[dict[str, dict[str, str]], str | None]:
    """(attributes per path, None) from one remote getfattr; ({}, why not) when it cannot run."""
    cmd = f"LC_ALL=C getfattr -R -h -P --absolute-names -d -m - -e base64 -- {shlex.quote(root)}"
    status, out, _ = session.run(cmd)
    if status == 127:
        return {}, f"getfattr is not installed on {session.display} (Debian: apt-get install attr)"
    return parse_dump(out, root), None


def restore_dump(entries: list[Entry], target: str) -> bytes:
    """The `setfattr --restore` input that puts the entries' attributes back under `target`."""
    lines = []
    for entry in entries:
        path = target.rstrip("/") if entry.path == "." else f"{target.rstrip('/')}/{entry.path}"
        lines.append(f"# file: {_escape(path)}")
        lines += [f"{_escape(name)}=0s{value}" for name, value in (entry.xattrs or {}).items()]
        lines.append("")
    return ("\n".join(lines) + "\n").encode()


def write_remote(session: RemoteSession, entries: list[Entry], target: str, skipped: list[str]) -> None:
    """Apply the entries' attributes on the host; what it refuses is listed in `skipped`."""
    if not entries:
        return
    status, _, err = session.run("setfattr -h --restore=-", stdin=iter([restore_dump(entries, target)]))
    if status == 127:
        skipped += [f"{e.path}: extended attributes not restored (setfattr is not installed on {session.display})"
                    for e in entries]
    elif status != 0:
        for line in err.decode("utf-8", "replace").splitlines()[:50]:
            skipped.append(f"extended attributes not all restored on {session.display}: {line.strip()}")
