"""The auth service's composition root."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from joserfc.jwk import KeySet

from sukverse_auth.api import routes
from sukverse_auth.keys import AUTH, HASHER, SIGNING_KEYS
from sukverse_auth.models import messaging
from sukverse_auth.passwords import Hasher
from sukverse_auth.service import AuthService
from sukverse_auth.settings import AuthSettings
from sukverse_auth.tokens import SigningKeys, TokenIssuer
from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.errors import ValidationFailed
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE, OUTBOX, VERIFIER
from sukverse_common.security import TokenVerifier

MIGRATIONS = "sukverse_auth:migrations"
GENERATED_ADMIN_EMAIL = "admin@sukverse.localhost"


@dataclass
class _Drawn:
    """The first admin's password, drawn before the database is created; handed over once."""

    password: str | None

    def take(self) -> str | None:
        password, self.password = self.password, None
        return password


_DRAWN = web.AppKey[_Drawn]("drawn_admin_password")


def create_app(settings: AuthSettings | None = None, *, bus: Bus | None = None) -> web.Application:
    settings = settings or AuthSettings()
    app: web.Application

    async def own_keys() -> KeySet:
        keys: KeySet = app[SIGNING_KEYS].public
        return keys

    verifier = TokenVerifier(
        load_keys=own_keys, issuer=settings.token_issuer, audience=settings.token_audience
    )
    app = create_service_app(
        settings,
        title="Sukverse auth",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        bus=bus,
        verifier=verifier,
    )
    # Before the database's context: hashing runs in its own processes while it migrates.
    app.cleanup_ctx.insert(0, _hashing_ctx(settings))
    app.cleanup_ctx.append(_auth_ctx(settings))
    return app


def load_signing_keys(settings: AuthSettings) -> SigningKeys:
    if settings.signing_key_file is not None:
        return SigningKeys.from_file(settings.signing_key_file)
    if settings.mode == "cluster":
        raise RuntimeError(
            "SUKVERSE_SIGNING_KEY_FILE must name the signing key set in cluster mode"
        )
    return SigningKeys.load_or_create(settings.data_dir / "auth-signing-keys.json")


def _hashing_ctx(settings: AuthSettings) -> CleanupContext:
    """The password hasher. Where the first admin will be generated (embedded mode, none
    configured, a new database), its password is drawn now and hashed while the database
    is created, rather than after: a hash takes as long as a migration."""

    async def hashing(app: web.Application) -> AsyncIterator[None]:
        database = settings.embedded_database
        generates_admin = (
            settings.mode == "embedded"
            and not (settings.admin_email and settings.admin_password)
            and database is not None
            and not database.exists()
        )
        first = secrets.token_urlsafe(18) if generates_admin else None
        hasher = Hasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            workers=settings.hash_workers,
            first=first,
        )
        app[HASHER] = hasher
        app[_DRAWN] = _Drawn(first)
        try:
            yield
        finally:
            await hasher.close()

    return hashing


def _auth_ctx(settings: AuthSettings) -> CleanupContext:
    async def auth(app: web.Application) -> AsyncIterator[None]:
        keys = load_signing_keys(settings)
        app[SIGNING_KEYS] = keys
        hasher = app[HASHER]
        service = AuthService(
            settings=settings,
            database=app[DATABASE],
            outbox=app[OUTBOX],
            hasher=hasher,
            issuer=TokenIssuer(
                keys,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                ttl_seconds=settings.access_token_ttl_seconds,
            ),
            revocations=app[VERIFIER].revocations,
        )
        app[AUTH] = service
        await service.ensure_builtin_roles()
        await service.warn_of_missing_client_roles()
        await _bootstrap_admin(service, settings, app[_DRAWN].take())
        yield

    return auth


async def _bootstrap_admin(
    service: AuthService, settings: AuthSettings, drawn: str | None = None
) -> None:
    """The first admin: from the settings, or generated once in embedded mode."""
    if settings.admin_email and settings.admin_password:
        try:
            await service.ensure_admin(
                settings.admin_email, settings.admin_password.get_secret_value()
            )
        except ValidationFailed as exc:
            reasons = "; ".join(error["reason"] for error in exc.errors or [])
            raise RuntimeError(f"SUKVERSE_ADMIN_PASSWORD is refused: {reasons}") from None
        return
    if settings.mode != "embedded" or await service.any_admin():
        return
    if drawn is None:
        password = secrets.token_urlsafe(18)
        hashed = await service.hasher.hash(password)
    else:
        password, hashed = drawn, await service.hasher.first_hash()
    await service.ensure_admin(GENERATED_ADMIN_EMAIL, password, hashed=hashed)
    print(  # shown once on the terminal, never logged
        "\nSukverse bootstrap admin (shown only this once):\n"
        f"  email:    {GENERATED_ADMIN_EMAIL}\n  password: {password}\n"
        "Set SUKVERSE_ADMIN_EMAIL and SUKVERSE_ADMIN_PASSWORD to choose your own.\n",
        file=sys.stderr,
        flush=True,
    )
