"""``python -m examples.oidc_rp [--port 8001]``: the example relying party on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from examples.oidc_rp.app import from_environment


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.oidc_rp")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(from_environment(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
