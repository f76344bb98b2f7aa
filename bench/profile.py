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


def record_start(
    pid: int, seconds: float, out: Path, *, wall: bool = False
) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid`` for ``seconds``. ``wall``: also sample threads that wait (``--idle``)
    and native frames, to see where time goes while nothing runs (locks, sleeps, I/O)."""
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = ["--idle", "--native"] if wall else ["--nonblocking"]
    return subprocess.Popen(
        [
            exe,
            "record",
            *extra,
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


IDLE = ("_queue_SimpleQueue_get", "epoll_pwait", "epoll_wait")  # a thread with nothing to do


@dataclass
class Summary:
    total: int  # every sample, idle threads included
    samples: int  # samples of threads that ran or were blocked on something
    leaves: list[tuple[str, int]]  # where a sample ended: frame (← nearest Python frame)
    ours: list[tuple[str, int]]  # qrlogin frames on the stack, inclusive

    def pct(self, count: int) -> float:
        return 100.0 * count / self.samples if self.samples else 0.0


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module path from the package:123)``."""
    if ".py:" not in frame:
        return frame.split(" (", 1)[0]  # a native frame: its symbol name
    name, _, where = frame.partition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        if "/lib/python" in path:
            path = path.rsplit("/", 1)[-1]
    return f"{name} ({path}:{line})"


def summarise(raw: Path, top: int = 12) -> Summary:
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    samples = total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [f for f in stack.split(";") if f and not f.startswith("0x")]
        if not frames or any(f.startswith(IDLE) for f in frames[-6:]):
            continue
        samples += count
        native = []
        for f in reversed(frames):
            if ".py:" in f:
                break
            native.append(f.split(" (", 1)[0])
        py = next((f for f in reversed(frames) if ".py:" in f), None)
        if native:
            shown = " > ".join(reversed(native[:5]))
            leaf = f"{shown} ← {_short(py)}" if py else shown
        else:
            leaf = _short(frames[-1])
        leaves[leaf] += count
        for f in {_short(f) for f in frames if "qrlogin/" in f and ".py:" in f}:
            ours[f] += count
    return Summary(total, samples, leaves.most_common(top), ours.most_common(top))


def as_markdown(title: str, s: Summary, raw: Path, note: str = "") -> str:
    lines = [
        f"#### {title}",
        "",
        f"{s.total} samples, {s.samples} of them not idle (idle: a thread waiting for work "
        f"in `epoll_pwait` or `_queue_SimpleQueue_get`). {note}Percentages are of the "
        f"non-idle samples. Raw stacks: `bench/results/{raw.name}` (not committed).",
        "",
        "| % of samples | where samples end (leaf frame) |",
        "|---:|---|",
    ]
    lines += [f"| {s.pct(c):.1f} | `{f}` |" for f, c in s.leaves]
    lines += ["", "| % of samples | qrlogin frames on the stack (inclusive) |", "|---:|---|"]
    lines += [f"| {s.pct(c):.1f} | `{f}` |" for f, c in s.ours]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    summary = summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25)
    print(as_markdown(sys.argv[1], summary, Path(sys.argv[1])))
