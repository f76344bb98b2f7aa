"""Bench-only peer: an RFC 8628 device authorization server on Authlib + Flask.

Run under gunicorn (``python -m bench`` does this):

    gunicorn -w 5 -k gthread --threads 4 -b 127.0.0.1:PORT bench.peers.authlib_server:app

The store is an in-process dict, like oidc-provider's default: not durable, and each gunicorn
worker has its own, so a device code is known only to the worker that issued it. The bench
measures ``POST /device_authorization`` (creation), which needs nothing shared; the token
endpoint and ``/bench/approve`` exist so the peer is a complete flow with one worker.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from flask import Flask, jsonify, request

CLIENT_ID = "bench-device"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

app = Flask(__name__)
credentials: dict[str, DeviceCredentialDict] = {}  # device_code -> credential
grants: dict[str, tuple[str, bool]] = {}  # user_code -> (user, approved)
tokens: dict[str, dict[str, Any]] = {}


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == DEVICE_GRANT


CLIENTS = {CLIENT_ID: Client(CLIENT_ID)}


def query_client(client_id: str) -> Client | None:
    return CLIENTS.get(client_id)


def save_token(token: dict[str, Any], req: Any) -> None:
    tokens[token["access_token"]] = token


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    EXPIRES_IN = 600

    def get_verification_uri(self) -> str:
        return "http://127.0.0.1/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        credentials[data["device_code"]] = DeviceCredentialDict(
            client_id=client_id,
            scope=scope,
            expires_at=time.time() + data["expires_in"],
            **data,
        )


class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - as Authlib declares it

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
        return credentials.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
        return grants.get(user_code)

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        return False


server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_endpoint(DeviceAuthorization)
server.register_grant(DeviceGrant)


@app.post("/device_authorization")
def device_authorization() -> Any:
    return server.create_endpoint_response(DeviceAuthorization.ENDPOINT_NAME)


@app.post("/token")
def issue_token() -> Any:
    return server.create_token_response()


@app.post("/bench/approve")
def bench_approve() -> Any:
    user_code = request.form.get("user_code", "")
    if not any(c.get_user_code() == user_code for c in credentials.values()):
        return jsonify(approved=False), 404
    grants[user_code] = (f"user-{secrets.token_hex(4)}", True)
    return jsonify(approved=True)
