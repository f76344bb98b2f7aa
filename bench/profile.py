"""Profiles of a server under load: py-spy in raw (collapsed stack) format, summarised as the
frames with the most samples, on the stack (inclusive) and on top of it (self)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record_start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Summary:
    samples: int
    idle: int
    inclusive: list[tuple[str, int]]
    self_time: list[tuple[str, int]]

    def busy_pct(self, count: int) -> float:
        busy = self.samples - self.idle
        return 100.0 * count / busy if busy else 0.0


IDLE_LEAVES = (
    "select (selectors.py",
    "_run_once (asyncio",
    "poll (selectors.py",
    "wait (threading.py",
)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)" with the package kept for src
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    if "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    elif "/src/" in path:
        path = path.split("/src/", 1)[1]
    elif "/lib/python" in path:
        path = "stdlib/" + path.rsplit("/", 1)[-1]
    return f"{name} ({path}:{line})"


def summarise(raw: Path, top: int = 15) -> Summary:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    samples = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = stack.split(";")
        samples += count
        leaf = frames[-1]
        if any(mark in leaf for mark in IDLE_LEAVES) or leaf.startswith(("epoll", "select")):
            idle += count
            continue
        shorts = [_short(f) for f in frames if "(" in f]
        for f in set(shorts):
            inclusive[f] += count
        if shorts:
            self_time[shorts[-1]] += count
    return Summary(samples, idle, inclusive.most_common(top), self_time.most_common(top))


def as_markdown(title: str, s: Summary, raw: Path) -> str:
    busy = s.samples - s.idle
    lines = [
        f"#### {title}",
        "",
        f"py-spy, {s.samples} samples, {busy} busy ({100 * busy / max(1, s.samples):.0f} %). "
        f"Raw stacks: `{raw.name}`.",
        "",
        "| inclusive % of busy | frame | | self % of busy | frame |",
        "|---:|---|---|---:|---|",
    ]
    for i in range(max(len(s.inclusive), len(s.self_time))):
        a = s.inclusive[i] if i < len(s.inclusive) else ("", 0)
        b = s.self_time[i] if i < len(s.self_time) else ("", 0)
        lines.append(f"| {s.busy_pct(a[1]):.1f} | `{a[0]}` | | {s.busy_pct(b[1]):.1f} | `{b[0]}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    summary = summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25)
    print(as_markdown(sys.argv[1], summary, Path(sys.argv[1])))
