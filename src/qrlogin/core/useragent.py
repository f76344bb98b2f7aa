"""Browser and OS names from a User-Agent, for the approval screen. Best effort, pure."""

from __future__ import annotations

import functools
import re

_BROWSERS: tuple[tuple[str, str], ...] = (
    (r"Edg(?:e|A|iOS)?/", "Edge"),
    (r"OPR/|Opera", "Opera"),
    (r"SamsungBrowser/", "Samsung Internet"),
    (r"Firefox/|FxiOS/", "Firefox"),
    (r"CriOS/|Chrome/|Chromium/", "Chrome"),
    (r"Safari/", "Safari"),
    (r"curl/", "curl"),
    (r"python-httpx|python-requests|aiohttp", "Python"),
)
_SYSTEMS: tuple[tuple[str, str], ...] = (
    (r"Android", "Android"),
    (r"iPhone|iPad|iPod", "iOS"),
    (r"CrOS", "ChromeOS"),
    (r"Windows", "Windows"),
    (r"Mac OS X|Macintosh", "macOS"),
    (r"Linux", "Linux"),
)


@functools.lru_cache(maxsize=4096)  # a handful of user agents make most requests
def describe(user_agent: str | None) -> tuple[str, str]:
    """``(browser, os)``, each ``"Unknown"`` when not recognised. Remembered per user agent
    (the regexes were ~30 µs of every request)."""
    ua = user_agent or ""
    browser = next((name for pat, name in _BROWSERS if re.search(pat, ua)), "Unknown browser")
    system = next((name for pat, name in _SYSTEMS if re.search(pat, ua)), "Unknown OS")
    return browser, system
