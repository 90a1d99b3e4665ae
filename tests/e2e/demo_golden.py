"""Normalising the demo's runbook for the golden comparison: what changes from run to run (the
temporary folder, ids, clock times, measured seconds) becomes a placeholder; the rest must match."""

from __future__ import annotations

import re

BEGIN, END = "----- runbook demo-shop -----", "----- end of runbook -----"
_RULES = [
    (re.compile(r"/(?:[\w.-]+/)*seawall-demo-[A-Za-z0-9_]+"), "<DEMO>"),  # under $TMPDIR (one per xdist worker)
    (re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}"), "<VERIFICATION>"),
    (re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}"), "<BACKUP>"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"), "<TIME> UTC"),
]
_SECONDS = re.compile(r"\d+\.\d[smhd]\b")


def runbook_from(stdout: str) -> str:
    return stdout.split(BEGIN + "\n", 1)[1].split(END, 1)[0]


def normalise(text: str) -> str:
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    # measured durations differ on every run; objectives (RPO 26.0h, RTO 30.0m) must not
    return "\n".join(_SECONDS.sub("<SECONDS>", line) if line.startswith("Measured on") else line
                     for line in text.split("\n"))
