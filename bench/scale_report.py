"""The table and the plot of bench/SCALE.md, from the rows bench/scale_bench.py appended.

    .venv/bin/python -m bench.scale_report [--results bench/scale_results.json] [--png bench/scale_memory.png]

Prints the Markdown table (one row per source, size, operation and commit: the last measurement
wins) and draws peak RSS against data size, one panel per source, one line per operation and
commit (the first commit measured solid, later ones dashed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import MB, REPO

OPS = ("backup", "restore", "copy", "verify")
SOURCES = {"tree": "file tree (datagen mix)", "pg": "PostgreSQL cluster (physical)",
           "files": "many small files (1-4 KiB)"}
GB = 1_000_000_000


def latest(rows: list[dict]) -> dict[tuple, dict]:
    """(source, size, op, commit) -> the last row measured for it."""
    out: dict[tuple, dict] = {}
    for row in rows:
        out[(row["source"], row["size"], row["op"], row["commit"])] = row
    return out


def table(rows: dict[tuple, dict]) -> str:
    head = ("| source | data | op | peak RSS, tree (MB) | seawall VmHWM (MB) | wall (s) | MB/s | CPU (s) "
            "| load 1-min before → after | machine alone | commit |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    commits = commit_order(rows)
    order = sorted(rows.values(), key=lambda r: (list(SOURCES).index(r["source"]), commits.index(r["commit"]),
                                                 r["data_bytes"], OPS.index(r["op"])))
    for r in order:
        data = r["data_bytes"]
        lock = "yes" if r.get("locked", True) else f"no ({r['lock_wait_s']:.0f} s tried)"
        size = f"{r['size']} files, {data / GB:.2f} GB" if r["source"] == "files" else f"{data / GB:.2f} GB"
        lines.append(f"| {r['source']} | {size} | {r['op']} | **{r['tree_peak'] / MB:.0f}** "
                     f"| {r['self_hwm'] / MB:.0f} | {r['wall_s']:.0f} | {data / MB / r['wall_s']:.0f} "
                     f"| {r['cpu_s']:.0f} | {r['load_before'][0]:.1f} → {r['load_after'][0]:.1f} "
                     f"| {lock} | `{r['commit']}` |")
    return "\n".join(lines)


def commit_order(rows: dict[tuple, dict]) -> list[str]:
    """Commits in the order they were first measured (the baseline first)."""
    first: dict[str, str] = {}
    for r in sorted(rows.values(), key=lambda r: r["at"]):
        first.setdefault(r["commit"], r["at"])
    return list(first)


def _x(row: dict) -> float:
    """Data size in GB, or for the small-files source the file count in thousands."""
    if row["source"] == "files":
        return float(row["size"].lower().removesuffix("k"))
    return row["data_bytes"] / GB


def plot(rows: dict[tuple, dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    commits = commit_order(rows)
    styles = dict(zip(commits, ("-", "--", ":", "-."), strict=False))
    fig, axes = plt.subplots(1, len(SOURCES), figsize=(15, 5))
    colors = dict(zip(OPS, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for ax, (source, title) in zip(axes, SOURCES.items(), strict=True):
        for commit in commits:
            for op in OPS:
                pts = sorted((_x(r), r["tree_peak"] / MB) for k, r in rows.items()
                             if k[0] == source and k[2] == op and k[3] == commit)
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", color=colors[op],
                            linestyle=styles.get(commit, ":"), label=f"{op} ({commit})")
        ax.set_title(title)
        ax.set_xlabel("files (thousands)" if source == "files" else "data size (GB)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, max(r["tree_peak"] for r in rows.values()) / MB * 1.08)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.set_ylabel("peak RSS of the seawall process tree (MB)")
    fig.suptitle("seawall CLI peak memory vs data size (local vaults, 2 shared cores)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", nargs="+", default=[str(REPO / "bench" / f) for f in
                                                     ("scale_results.json", "scale_results_files.json",
                                                      "scale_results_packs.json", "scale_results_gated.json")])
    ap.add_argument("--png", default=str(REPO / "bench" / "scale_memory.png"))
    args = ap.parse_args()
    rows = latest([row for path in args.results if Path(path).exists() for row in json.loads(Path(path).read_text())])
    print(table(rows))
    plot(rows, Path(args.png))
    print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
