"""The targets of `bench.pg_bench` and the summary printed after a run (one line per acceptance point)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.pg_common import MB, PgBackRest, med

RSS_LIMIT = 300 * MB
TARGETS = {"logical": 1.15, "incremental": 0.05, "physical": 1.0, "restore": 1.0, "behind": 4}


def summarise(res: dict[str, Any], rss: dict[str, list[int]]) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    if "logical" in res:
        lg = res["logical"]
        lines.append(f"a. logical backup: seawall {lg['seawall_median_s']:.1f}s vs pg_dump -Fd -Z0 -j2 "
                     f"{lg['pg_dump_median_s']:.1f}s = {lg['ratio']:.2f}x (in-process {lg['ratio_op']:.2f}x; "
                     f"target <= {lg['target']}x: {mark(lg['ratio'] <= lg['target'])}); machine busy "
                     f"{med(lg['seawall_machine_busy_s']):.1f} vs {med(lg['pg_dump_machine_busy_s']):.1f} CPU-s "
                     f"on {lg['cores']} cores")
    if "incremental" in res:
        inc = res["incremental"]
        lines.append(f"b. second logical backup after 1% changed (recent): "
                     f"{inc['recent']['stored_bytes_new'] / MB:.1f} MB = {inc['share']:.1%} of the first "
                     f"(target <= 5%: {mark(inc['share'] <= inc['target'])}); "
                     f"scattered 1%: {inc['scattered']['share']:.1%}")
    if "physical" in res:
        ph = res["physical"]
        lines.append(f"c. physical backup: seawall {ph['seawall_median_s']:.1f}s vs pgbackrest full "
                     f"{ph['pgbackrest_median_s']:.1f}s = {ph['ratio']:.2f}x (in-process {ph['ratio_op']:.2f}x; "
                     f"target <= 1.0x: {mark(ph['ratio'] <= ph['target'])})")
    if "restore" in res:
        rs = res["restore"]
        lines.append(f"d. PITR restore (latest, {rs['wal_bytes'] / MB:.0f} MB WAL): "
                     f"seawall {rs['seawall_median_s']:.1f}s vs pgbackrest restore + recovery "
                     f"{rs['pgbackrest_median_s']:.1f}s = {rs['ratio']:.2f}x "
                     f"(target <= 1.0x: {mark(rs['ratio'] <= rs['target'])})")
    if "keep_up" in res:
        ku = res["keep_up"]
        ok = ku["failed_count"] == 0 and 0 <= ku["behind_at_end"] <= ku["target_behind"]
        lines.append(f"e. archive keep-up: {ku['wal_bytes'] / MB:.0f} MB WAL in {ku['load_s']}s, failed_count "
                     f"{ku['failed_count']}, {ku['behind_at_end']} segments behind at the end (max "
                     f"{ku['max_behind']}) (target 0 failures, <= 4 behind: {mark(ok)})")
    if rss:
        peaks = {k: max(v) for k, v in rss.items()}
        worst = max(v for k, v in peaks.items() if "incl." not in k)
        lines.append("f. peak RSS: " + ", ".join(f"{k} {v / MB:.0f} MB" for k, v in peaks.items())
                     + f" (target < 300 MB: {mark(worst < RSS_LIMIT)})")
    return "\n".join(lines)


def machine_facts(root: Path) -> dict[str, Any]:
    from bench.common import filesystem, machine

    facts = machine()
    facts["filesystem"] = filesystem(root)
    facts["pgbackrest"] = PgBackRest.version()
    facts["load_before"] = os.getloadavg()
    return facts
