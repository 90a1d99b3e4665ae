"""Restore a file-tree backup onto a remote host over SSH, atomically per file.

Each file is written to a temp name in its final directory and moved into place with
`posix-rename@openssh.com`, so a reader on the host never sees a half-written file. Modes, mtimes,
symlinks, and ownership (when connected as root) are restored. SFTP v3 can set mtimes only in whole
seconds and cannot touch a symlink's own times, so when the host allows commands the metadata is
applied afterwards by one `sh -s` script (`chown -h`, `chmod`, `touch -h -d @s.ns`), directories
last and children first, so writing into a directory does not disturb its restored mtime.

Hard links, fifos and device nodes (as root) are made by that script too (`ln`, `mkfifo`, `mknod`),
and extended attributes and ACLs by one `setfattr --restore`; a host without a shell for us, or
without setfattr, gets the rest and has what it could not take listed in `skipped`.

Like a local restore it never overwrites: the target must be missing or empty. A marker file in the
target makes a retried task resume (and overwrite) its own unfinished restore of the same backup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator

from seawall.errors import ConfigError, PermanentError
from seawall.manifest import Manifest, StreamRef
from seawall.sources import fidelity, xattr_dump
from seawall.sources.files import iter_tree
from seawall.sources.remote import RemoteSession
from seawall.sources.tree import Entry
from seawall.ssh import rpath, translate_ssh_errors
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]
MARKER = ".seawall-restore-in-progress"
_NOT_RESTORED = "seawall-not-restored: "  # stderr lines of the metadata script naming what it could not make


def _exists(session: RemoteSession, path: bytes) -> bool:
    try:
        session.sftp.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def check_remote_target(session: RemoteSession, target: str, backup_id: str) -> bool:
    """Missing or empty → False; our own unfinished restore of `backup_id` → True (resume); else ConfigError."""
    where = f"restore target {target} on {session.display}"
    try:
        st = session.sftp.stat(rpath(target, "."))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    if not stat.S_ISDIR(st.st_mode or 0):
        raise ConfigError(f"{where} is not a directory", hint="restore into a new or empty folder")
    try:
        names = session.sftp.listdir(rpath(target, "."))
    except UnicodeDecodeError:  # a name that is not UTF-8: certainly not empty
        names = ["?"]
    if not names:
        return False
    if MARKER in names:
        with session.sftp.open(rpath(target, MARKER), "rb") as fh:
            if fh.read(200).decode(errors="replace").strip() == backup_id:
                return True
    raise ConfigError(f"{where} is not empty", hint="restore into a new or empty folder")


def _makedirs(session: RemoteSession, target: str) -> None:
    parts = [p for p in target.split("/") if p]
    for i in range(1, len(parts) + 1):
        path = "/" + "/".join(parts[:i])
        if not _exists(session, rpath(path, ".")):
            session.sftp.mkdir(rpath(path, "."))


def restore_tree_remote(vault: Vault, manifest: Manifest, session: RemoteSession, target: str, *,
                        progress: Progress | None = None, workers: int = 3, skipped: list[str] | None = None) -> int:
    """Restore a files backup into `target` on the session's host; returns the number of files written.

    What the host cannot take (see the module docstring) is appended to `skipped`.
    """
    skipped = [] if skipped is None else skipped
    if manifest.kind != "files":
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.kind} backup, not a file tree")
    with translate_ssh_errors(f"restoring {manifest.backup_id} to {target} on {session.display}"):
        resume = check_remote_target(session, target, manifest.backup_id)
        _makedirs(session, target)
        with session.sftp.open(rpath(target, MARKER), "wb") as fh:
            fh.write(manifest.backup_id.encode() + b"\n")
        shell = session.has_shell(target)
        as_root = _is_root(session, shell)
        with tempfile.SpooledTemporaryFile(4 << 20) as script:
            def meta(entry: Entry) -> None:
                if entry.type in "hpcb" and not _special(target, entry, as_root, shell, script, skipped):
                    return
                if entry.type != "h":
                    _meta(session, target, entry, as_root, shell, script)

            count, dirs, attrs = _write_entries(vault, manifest, session, target, resume, progress, workers, meta)
            session.sftp.remove(rpath(target, MARKER))
            for entry in reversed(dirs):
                _meta(session, target, entry, as_root, shell, script)
            if shell:
                script.seek(0)
                skipped += _run_script(session, script)
                xattr_dump.write_remote(session, attrs, target, skipped)
            else:
                skipped += [f"{e.path}: extended attributes not restored (no shell access to {session.display})"
                            for e in attrs]
    return count


def _special(target: str, entry: Entry, as_root: bool, shell: bool, script, skipped: list[str]) -> bool:
    """Queue the command that makes a hard link, fifo or device node; False (listed) if it cannot be made."""
    what = {"h": f"hard link to {entry.target}", "p": "fifo"}.get(entry.type, "device node")
    if not shell or (entry.type in "cb" and not as_root):
        why = "needs root" if shell else f"no shell access to the host: SFTP cannot make a {what.split()[0]}"
        skipped.append(f"{entry.path}: {what} not restored ({why})")
        return False
    dest = shlex.quote(rpath(target, entry.path).decode("utf-8", "surrogateescape"))
    if entry.type == "h":
        source = shlex.quote(rpath(target, entry.target or "").decode("utf-8", "surrogateescape"))
        line = f"ln -f -- {source} {dest}"
    elif entry.type == "p":
        line = f"rm -f -- {dest}; mkfifo -- {dest}"
    else:  # a container's root may not make devices: report it, restore the rest
        secs, ns = divmod(entry.mtime_ns, 1_000_000_000)
        refused = shlex.quote(f"{_NOT_RESTORED}{entry.path}: device node not restored (mknod refused)")
        line = (f"rm -f -- {dest}; if mknod -- {dest} {entry.type} {os.major(entry.rdev)} {os.minor(entry.rdev)} "
                f"2>/dev/null; then chown -h {entry.uid}:{entry.gid} -- {dest}; chmod {entry.mode:o} -- {dest}; "
                f"touch -h -c -d @{secs}.{ns:09d} -- {dest}; else echo {refused} >&2; fi")
    script.write((line + "\n").encode("utf-8", "surrogateescape"))
    return entry.type != "c" and entry.type != "b"  # a device's metadata is part of its line


def _write_entries(vault: Vault, manifest: Manifest, session: RemoteSession, target: str, resume: bool,
                   progress: Progress | None, workers: int,
                   meta: Callable[[Entry], None]) -> tuple[int, list[Entry], list[Entry]]:
    dirs: list[Entry] = []
    attrs: list[Entry] = []  # entries with extended attributes, set once everything exists
    count = 0
    with ChunkReader(vault, workers=workers) as reader, ChunkReader(vault, workers=workers) as tree_reader:
        for entry in iter_tree(vault, manifest, tree_reader):
            dest = rpath(target, entry.path)
            if entry.xattrs:
                attrs.append(entry)
            if entry.type == "d":
                if entry.path != "." and not (resume and _exists(session, dest)):
                    session.sftp.mkdir(dest)
                dirs.append(entry)
                continue
            if entry.type == "l":
                if resume and _exists(session, dest):
                    session.sftp.remove(dest)
                session.sftp.symlink(entry.target.encode("utf-8", "surrogateescape"), dest)
            elif entry.type == "f":
                _write_file(session, reader, entry, dest, progress)
                count += 1
            meta(entry)
    return count, dirs, attrs


def _write_file(session: RemoteSession, reader: ChunkReader, entry: Entry, dest: bytes,
                progress: Progress | None) -> None:
    head, _, name = dest.rpartition(b"/")
    tmp = head + b"/." + name + b".seawall-partial"
    ref = StreamRef(name=entry.path, size=entry.size, hash=entry.hash or "", chunks=entry.chunks)
    try:
        with session.sftp.open(tmp, "wb") as out:
            out.set_pipelined(True)  # writes are acknowledged in bulk at close
            if entry.holes is not None:  # SFTP writes at offsets: skipped ranges stay holes
                _write_sparse(out, reader.iter_stream(ref), entry, progress)
            else:
                for data in reader.iter_stream(ref):
                    out.write(data)
                    if progress:
                        progress(len(data))
        session.sftp.posix_rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(Exception):
            session.sftp.remove(tmp)
        raise


def _write_sparse(out, pieces: Iterator[bytes], entry: Entry, progress: Progress | None) -> None:
    for offset, data, consumed in fidelity.sparse_spans(pieces, entry.holes or []):
        if data:
            out.seek(offset)
            out.write(data)
        if consumed and progress:
            progress(consumed)
    out.truncate(entry.size)


def _is_root(session: RemoteSession, shell: bool) -> bool:
    if shell:
        status, out, _ = session.run("id -u")
        return status == 0 and out.strip() == b"0"
    return session.options.username_or_default == "root"


def _meta(session: RemoteSession, target: str, entry: Entry, as_root: bool, shell: bool, script) -> None:
    """Queue (shell) or apply (SFTP) one entry's owner, mode and mtime."""
    path = rpath(target, entry.path)
    if shell:
        quoted = shlex.quote(path.decode("utf-8", "surrogateescape"))
        secs, ns = divmod(entry.mtime_ns, 1_000_000_000)
        lines = [f"chown -h {entry.uid}:{entry.gid} -- {quoted}"] if as_root else []
        if entry.type != "l":
            lines.append(f"chmod {entry.mode:o} -- {quoted}")  # after chown, which clears setuid bits
        lines.append(f"touch -h -c -d @{secs}.{ns:09d} -- {quoted}")
        script.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
        return
    if entry.type == "l":
        return  # SFTP v3 setstat follows links: a link's own owner and mtime cannot be set
    if as_root:
        session.sftp.chown(path, entry.uid, entry.gid)
    session.sftp.chmod(path, entry.mode)
    secs = entry.mtime_ns // 1_000_000_000
    session.sftp.utime(path, (secs, secs))


def _run_script(session: RemoteSession, script) -> list[str]:
    """Run the metadata script; returns the items it reported as not restored."""
    def pieces() -> Iterator[bytes]:
        yield b"set -e\n"
        while piece := script.read(1 << 16):
            yield piece

    status, _, err = session.run("sh -s", stdin=pieces())
    if status != 0:
        first = err.decode(errors="replace").strip().splitlines()[:1]
        raise PermanentError(f"setting owners, modes and mtimes on {session.display} failed "
                             f"({first[0] if first else f'exit {status}'})")
    lines = err.decode("utf-8", "surrogateescape").splitlines()
    return [line[len(_NOT_RESTORED):] for line in lines if line.startswith(_NOT_RESTORED)]
