"""An incremental ``text/event-stream`` parser (the WHATWG HTML "server-sent events" rules
that matter here: ``event``, ``data``, ``id``, comments, and a blank line ending an event)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None


@dataclass
class EventParser:
    """Feed it lines; it returns an ``Event`` when a blank line completes one."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self._data and not self._event:
                return None
            done = Event(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return done
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None
