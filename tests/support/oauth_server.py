"""A real OAuth2 authorization server (Authlib) over HTTPS on 127.0.0.1, for the XOAUTH2 tests."""

import contextlib
import html
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidRequestError,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from support.smtp_servers import HOST, Certs, server_context

CLIENT_ID = "portal-client"
MAILBOX = "mailbox@example.com"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
ERROR_STATUS = {"temporarily_unavailable": 503, "server_error": 500}  # any other error: 400


@dataclass
class _Client(ClientMixin):
    provider: "Provider"
    client_id: str
    client_secret: str

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        uris = self.provider.redirect_uris
        return not uris or redirect_uri in uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS  # confidential: never "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code(AuthorizationCodeMixin):
    code: str
    redirect_uri: str | None
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class _Token(TokenMixin):
    """One access or refresh token; `grant` ties together all tokens of one authorization."""

    value: str
    kind: str  # "access" or "refresh"
    grant: int
    user: str
    scope: str
    expires_at: float
    revoked: bool = False

    def check_client(self, client: _Client) -> bool:
        return client.client_id == CLIENT_ID  # the only client

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


class _S256Required(CodeChallenge):
    """PKCE with S256 mandatory even for this confidential client (authlib only forces public)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        payload = grant.request.payload.data
        if not payload.get("code_challenge") or payload.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required.")
        super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        payload = request.payload
        challenge = payload.data["code_challenge"], payload.data["code_challenge_method"]
        record = _Code(code, payload.redirect_uri, request.scope or "", request.user, *challenge)
        self.server.provider._codes[code] = record

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        return self.server.provider._codes.get(code)  # there is only one client

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.server.provider._codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> str:
        return authorization_code.user


class _RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS  # authlib's default is basic only

    def issue_token(self, user: str, refresh_token: _Token) -> dict[str, Any]:
        self.INCLUDE_NEW_REFRESH_TOKEN = self.server.provider.rotate
        return super().issue_token(user, refresh_token)

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        found = self.server.provider._tokens.get(refresh_token)
        ok = found and found.kind == "refresh" and not found.revoked
        return found if ok else None

    def authenticate_user(self, refresh_token: _Token) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        if self.server.provider.rotate:
            refresh_token.revoked = True


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, request: OAuth2Request, client: _Client) -> _Token | None:
        found = super().authenticate_token(request, client)
        self.server.provider.revoked.append(request.form["token"])
        return found

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return self.server.provider._tokens.get(token_string)

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        for other in self.server.provider._tokens.values():
            # A refresh token takes its whole authorization along; an access token only itself.
            if other is token or (token.kind == "refresh" and other.grant == token.grant):
                other.revoked = True


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.0"  # no keep-alive: no connection outlives the server

    def log(self, type: str, message: str, *args: Any) -> None:
        pass  # werkzeug would otherwise attach a handler to its global logger


class Provider:
    """The running provider: URLs, its one client, knobs to misbehave, and what it saw.

    Any redirect_uri is accepted, unless tests add some to `redirect_uris`: then only those.
    `refresh_delay` delays each refresh answer, not the work: a rotated token is already spent.
    Revoking a refresh token revokes every token of its authorization; an access token, itself.
    """

    def __init__(self, access_ttl: int, rotate: bool) -> None:
        self.client_id = CLIENT_ID
        self.client_secret = f"client-secret-{uuid.uuid4().hex}"
        self.mailbox = MAILBOX
        self.access_ttl, self.rotate = access_ttl, rotate
        self.client = _Client(self, self.client_id, self.client_secret)
        self.redirect_uris: set[str] = set()
        self.refresh_delay: float = 0.0
        self.fail_refresh_with: str | None = None
        self.refresh_count = 0
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, Any]] = []  # see _token_endpoint for the keys
        self.issued_refresh_tokens: list[str] = []
        self.revoked: list[str] = []  # token strings a client asked to revoke
        self.lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._grants = 0

    def _listening_at(self, base_url: str) -> None:
        self.base_url, self.authorize_url = base_url, f"{base_url}/authorize"
        self.token_url, self.revoke_url = f"{base_url}/token", f"{base_url}/revoke"

    def valid_refresh_tokens(self) -> set[str]:
        """Refresh tokens that would be accepted now."""
        with self.lock:
            return {t.value for t in self._tokens.values() if t.kind == "refresh" and not t.revoked}

    def is_valid_access_token(self, token: str, user: str | None = None) -> bool:
        """Whether `token` is a live access token (for `user`, if given)."""
        with self.lock:
            found = self._tokens.get(token)
            if not found or found.kind != "access" or found.revoked or found.is_expired():
                return False
            return user is None or user == found.user

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far invalid; refresh tokens still work."""
        with self.lock:
            for token in self._tokens.values():
                if token.kind == "access":
                    token.expires_at = min(token.expires_at, time.time())

    def revoke_all(self) -> None:
        """Invalidate every token issued so far, as a user revoking the app's access would."""
        with self.lock:
            for token in self._tokens.values():
                token.revoked = True

    def _save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.refresh_token is not None:
            grant = request.refresh_token.grant
        else:
            self._grants += 1
            grant = self._grants
        token.setdefault("expires_in", self.access_ttl)  # authlib leaves out a falsy expires_in
        common = (grant, request.user, token.get("scope", ""))
        expires = time.time() + self.access_ttl
        access = token["access_token"]
        self._tokens[access] = _Token(access, "access", *common, expires_at=expires)
        if refresh := token.get("refresh_token"):
            self._tokens[refresh] = _Token(refresh, "refresh", *common, expires_at=float("inf"))
            self.issued_refresh_tokens.append(refresh)

    def _consent(self) -> str:
        client = html.escape(request.args.get("client_id", ""))
        action = html.escape(f"/authorize?{request.query_string.decode()}")
        return (
            "<!doctype html><title>Consent</title>"
            f"<p>Allow {client} to send mail as {self.mailbox}?</p>"
            f'<form method="post" action="{action}">'
            '<button name="confirm" value="yes">Allow</button> '
            '<button name="confirm" value="no">Deny</button></form>'
        )

    def _token_endpoint(self, server: AuthorizationServer) -> Response:
        form = request.form
        refresh = form.get("grant_type") == "refresh_token"
        basic = request.authorization is not None and request.authorization.type == "basic"
        with self.lock:
            self.token_requests.append(
                {  # auth: how the client authenticated, "basic", "post" or None
                    "grant_type": form.get("grant_type"),
                    "auth": "basic" if basic else "post" if "client_secret" in form else None,
                    "code_verifier": "code_verifier" in form,
                    "refresh_token": form.get("refresh_token"),
                }
            )
            if refresh and self.fail_refresh_with:
                status = ERROR_STATUS.get(self.fail_refresh_with, 400)
                error = OAuth2Error(error=self.fail_refresh_with, status_code=status)
                response = server.handle_error_response(None, error)
            else:
                response = server.create_token_response()
                if refresh and response.status_code == 200:
                    self.refresh_count += 1
        if refresh:
            time.sleep(self.refresh_delay)
        return response

    def _app(self) -> Flask:
        app = Flask(__name__)
        query_client = {CLIENT_ID: self.client}.get
        server = AuthorizationServer(app, query_client, self._save_token)
        server.provider = self  # type: ignore[attr-defined]  # how the grants reach the stores
        generator = BearerTokenGenerator(
            lambda **_: f"at-{secrets.token_urlsafe(24)}",
            lambda **_: f"rt-{secrets.token_urlsafe(24)}",
            lambda client, grant_type: self.access_ttl,
        )
        server.register_token_generator("default", generator)
        server.register_grant(_CodeGrant, [_S256Required(required=True)])
        server.register_grant(_RefreshGrant)
        server.register_endpoint(_Revocation)

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Response | str:
            with self.lock:
                if request.method == "GET":
                    self.authorize_requests.append(request.args.to_dict())
                try:
                    grant = server.get_consent_grant(end_user=self.mailbox)
                except OAuth2Error as error:
                    return server.handle_error_response(None, error)
                if request.method == "GET":
                    return self._consent()
                user = self.mailbox if request.form.get("confirm") == "yes" else None
                return server.create_authorization_response(grant_user=user, grant=grant)

        app.add_url_rule("/token", "token", lambda: self._token_endpoint(server), methods=["POST"])

        @app.post("/revoke")
        def revoke() -> Response:
            with self.lock:
                return server.create_endpoint_response(_Revocation.ENDPOINT_NAME)

        return app


@contextlib.contextmanager
def oauth_provider(
    certs: Certs, *, access_ttl: int = 3600, rotate: bool = True
) -> Iterator[Provider]:
    """Serve a Provider over HTTPS on a free port of 127.0.0.1 (trust `certs.ca`) until exit."""
    provider = Provider(access_ttl, rotate)
    server = make_server(
        HOST,
        0,
        provider._app(),
        threaded=True,
        request_handler=_QuietHandler,
        ssl_context=server_context(certs.good),
    )
    provider._listening_at(f"https://{HOST}:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
