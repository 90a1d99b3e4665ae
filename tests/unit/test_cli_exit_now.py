"""`seawall.cli.entry.exit_now`: a finished command ends with `os._exit` (no interpreter teardown),
but nothing the teardown would have done that users can see is lost: buffered output, atexit
handlers, the exit code; and it falls back to a normal exit while a non-daemon thread runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEAWALL = str(Path(sys.executable).with_name("seawall"))


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_output_atexit_handlers_and_code_survive() -> None:
    done = _python("import atexit, logging, sys\n"
                   "from seawall.cli.entry import exit_now\n"
                   "atexit.register(lambda: print('from atexit'))\n"
                   "logging.basicConfig(stream=sys.stderr)\n"
                   "logging.getLogger('x').warning('logged')\n"
                   "sys.stdout.write('x' * 100000 + ' no newline')\n"
                   "exit_now(3)\n")
    assert done.returncode == 3
    assert done.stdout == "x" * 100000 + " no newlinefrom atexit\n"
    assert "logged" in done.stderr


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    flag = tmp_path / "written"
    done = _python("import threading, time\n"
                   "from seawall.cli.entry import exit_now\n"
                   f"def late(): time.sleep(0.3); open({str(flag)!r}, 'w').write('done')\n"
                   "threading.Thread(target=late).start()\n"
                   "exit_now(4)\n")
    assert done.returncode == 4
    assert flag.read_text() == "done"


def test_cli_exit_codes_and_output_through_the_entry_point() -> None:
    helped = subprocess.run([SEAWALL, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "Usage" in helped.stdout and helped.stdout.endswith("\n")
    wrong = subprocess.run([SEAWALL, "list"], capture_output=True, text=True, timeout=60)  # --vault missing
    assert wrong.returncode == 2 and "--vault" in wrong.stderr
