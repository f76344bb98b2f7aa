"""The ceiling of the web stack: a bare FastAPI app on uvicorn[standard] (httptools, uvloop),
one process, whose ``/healthz`` returns what qrlogin's does. ``python -m bench`` serves it
beside qrlogin so ``GET /healthz`` of both is compared in one run (issue 15)."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
