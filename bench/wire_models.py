"""``python -m bench.wire_models``: what one requester state costs to serialise, as the wire
model (``model_dump_json``, what the API, long-poll and SSE send) and as the dict +
``json.dumps`` it replaced. Prints the best of 7 runs of 20,000 each, in microseconds."""

from __future__ import annotations

import json
import timeit

from qrlogin.handshake.views import LoginRequestState


def main() -> None:
    state = LoginRequestState(
        id="lr_AAAAAAAAAAAAAAAAAAAAAA",
        status="pending",
        version=3,
        expires_at=1796219001.744,
        qr_url="https://login.example/q/" + "h" * 43,
        qr_expires_at=1796218731.5,
        user_code="123 456",
    )
    fields = state.model_dump()
    n = 20_000
    runs = {
        "model_dump_json (wire model)": state.model_dump_json,
        "json.dumps of a dict (before)": lambda: json.dumps(fields, separators=(",", ":")),
        "build the model + model_dump_json": lambda: LoginRequestState(**fields).model_dump_json(),
    }
    for name, fn in runs.items():
        best = min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6
        print(f"{name:40} {best:6.2f} µs")


if __name__ == "__main__":
    main()
