"""Use cases of the auth service: each owns its transaction and writes its events to the outbox."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_auth import store
from sukverse_auth.domain import (
    BUILTIN_ROLES,
    DEFAULT_ROLE,
    PERMISSIONS,
    normalise_email,
    password_problems,
    scopes_for,
)
from sukverse_auth.models import RefreshToken, Role, RolePermission, User, UserRole
from sukverse_auth.passwords import Hasher
from sukverse_auth.ratelimit import FailureWindow
from sukverse_auth.schemas import AccessToken, PermissionOut, RoleIn, RoleOut, TokenPair
from sukverse_auth.settings import AuthSettings
from sukverse_auth.tokens import TokenIssuer, hash_refresh_token, new_refresh_token
from sukverse_common.db import Database
from sukverse_common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from sukverse_common.events.contracts import UserRegistered, UserRolesChanged
from sukverse_common.events.outbox import Outbox

log = structlog.get_logger(__name__)

WRONG_CREDENTIALS = "the email or password is wrong"


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise ValidationFailed(
            errors=[{"field": "cursor", "reason": "not a valid cursor"}]
        ) from None


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        database: Database,
        outbox: Outbox,
        hasher: Hasher,
        issuer: TokenIssuer,
    ) -> None:
        self.settings = settings
        self.database = database
        self.outbox = outbox
        self.hasher = hasher
        self.issuer = issuer
        self.address_failures = FailureWindow(
            limit=settings.login_address_limit, window_seconds=settings.login_address_window_seconds
        )
        # Unknown emails are locked out like real accounts, so lockout reveals nothing.
        self.unknown_account_failures = FailureWindow(
            limit=settings.login_max_failures, window_seconds=settings.login_lockout_seconds
        )

    # -- registration and login -------------------------------------------------------------

    def check_password(self, password: str, *, email: str, full_name: str) -> None:
        problem = password_problems(
            password,
            min_length=self.settings.password_min_length,
            max_length=self.settings.password_max_length,
            user_inputs=[email, *email.split("@"), *full_name.split(), "sukverse"],
        )
        if problem:
            raise ValidationFailed(
                errors=[{"field": "password", "reason": f"the password {problem}"}]
            )

    async def register(
        self, *, email: str, password: str, full_name: str, roles: Sequence[str] = (DEFAULT_ROLE,)
    ) -> User:
        email = normalise_email(email)
        self.check_password(password, email=email, full_name=full_name)
        password_hash = await self.hasher.hash(password)
        now = _now()
        try:
            async with self.database.sessions() as session, session.begin():
                if await store.user_by_email(session, email) is not None:
                    raise Conflict("an account with this email already exists")
                user = User(
                    email=email,
                    full_name=full_name,
                    password_hash=password_hash,
                    is_active=True,
                    failed_logins=0,
                    created_at=now,
                    updated_at=now,
                    roles=[UserRole(role_name=role) for role in roles],
                )
                session.add(user)
                await session.flush()
                await self.outbox.add(
                    session,
                    UserRegistered(
                        user_id=user.id,
                        email=email,
                        full_name=full_name,
                        roles=list(roles),
                        registered_at=now,
                    ),
                    subject=str(user.id),
                )
        except IntegrityError:
            raise Conflict("an account with this email already exists") from None
        log.info("user registered", user_id=str(user.id))
        return user

    async def login(self, *, email: str, password: str, address: str) -> TokenPair:
        retry = self.address_failures.retry_after(address)
        if retry is not None:
            raise TooManyRequests("too many failed logins from this address", retry_after=retry)
        email = normalise_email(email)
        async with self.database.sessions() as session:
            found = await store.user_by_email(session, email)
        # Verify before anything else, found or not, so both answers take as long.
        password_ok = await self.hasher.verify(found.password_hash if found else None, password)
        now = _now()
        if found is None:
            locked_for = self.unknown_account_failures.retry_after(email)
            self.unknown_account_failures.fail(email)
            raise self._refuse(address, locked_for)
        async with self.database.sessions() as session, session.begin():
            user = await store.user_by_id(session, found.id)
            if user is None:
                raise self._refuse(address, None)
            locked_for = None
            if user.locked_until is not None and user.locked_until > now:
                locked_for = int((user.locked_until - now).total_seconds()) + 1
            if locked_for is None and password_ok and user.is_active:
                user.failed_logins = 0
                user.locked_until = None
                if self.hasher.needs_rehash(user.password_hash):
                    user.password_hash = await self.hasher.hash(password)
                self.address_failures.clear(address)
                return await self._issue_pair(session, user, family_id=uuid.uuid4(), now=now)
            if locked_for is None:
                user.failed_logins += 1
                if user.failed_logins >= self.settings.login_max_failures:
                    user.failed_logins = 0
                    user.locked_until = now + timedelta(seconds=self.settings.login_lockout_seconds)
                    log.warning("account locked after failed logins", user_id=str(user.id))
        raise self._refuse(address, locked_for)

    def _refuse(self, address: str, locked_for: int | None) -> Unauthorized | TooManyRequests:
        self.address_failures.fail(address)
        if locked_for is not None:
            return TooManyRequests("this account is temporarily locked", retry_after=locked_for)
        return Unauthorized(WRONG_CREDENTIALS)

    async def _issue_pair(
        self, session: AsyncSession, user: User, *, family_id: uuid.UUID, now: datetime
    ) -> TokenPair:
        roles = user.role_names
        grants = await store.role_grants(session, roles)
        refresh, refresh_hash = new_refresh_token()
        session.add(
            RefreshToken(
                token_hash=refresh_hash,
                family_id=family_id,
                user_id=user.id,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
            )
        )
        access = self.issuer.access_token(
            subject=str(user.id), email=user.email, roles=roles, scopes=scopes_for(roles, grants)
        )
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self.issuer.ttl_seconds
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; presenting a used one revokes its whole family."""
        now = _now()
        async with self.database.sessions() as session, session.begin():
            current = await store.refresh_token(session, hash_refresh_token(refresh_token))
            if current is None or current.revoked_at is not None or current.expires_at <= now:
                raise Unauthorized("the refresh token is invalid, expired or revoked")
            if await store.mark_refresh_token_used(session, current.id, now):
                user = await store.user_by_id(session, current.user_id)
                if user is None or not user.is_active:
                    raise Unauthorized("the account is disabled")
                return await self._issue_pair(session, user, family_id=current.family_id, now=now)
            await store.revoke_families(session, now, family_id=current.family_id)
        log.warning("refresh token reused; family revoked", family_id=str(current.family_id))
        raise Unauthorized("the refresh token was already used; its sessions are revoked")

    async def logout(
        self, user_id: uuid.UUID, *, refresh_token: str | None, everywhere: bool
    ) -> None:
        now = _now()
        async with self.database.sessions() as session, session.begin():
            if everywhere:
                await store.revoke_families(session, now, user_id=user_id)
            elif refresh_token is not None:
                token = await store.refresh_token(session, hash_refresh_token(refresh_token))
                if token is not None and token.user_id == user_id:
                    await store.revoke_families(session, now, family_id=token.family_id)

    async def client_credentials(
        self, *, client_id: str, client_secret: str, scope: str | None
    ) -> AccessToken:
        """OAuth 2.0 client-credentials grant (RFC 6749 §4.4) for machine clients."""
        expected = self.settings.service_clients.get(client_id)
        presented = client_secret.encode()
        reference = expected.get_secret_value().encode() if expected else secrets.token_bytes(32)
        if not hmac.compare_digest(presented, reference) or expected is None:
            raise ClientAuthFailed()
        roles = ["service"]
        async with self.database.sessions() as session:
            granted = scopes_for(roles, await store.role_grants(session, roles))
        if scope:
            requested = scope.split()
            unknown = sorted(set(requested) - set(granted))
            if unknown:
                raise InvalidScope(f"not granted to this client: {' '.join(unknown)}")
            granted = sorted(set(requested))
        token = self.issuer.access_token(
            subject=f"client:{client_id}", email=None, roles=roles, scopes=granted
        )
        return AccessToken(
            access_token=token, expires_in=self.issuer.ttl_seconds, scope=" ".join(granted)
        )

    # -- users ---------------------------------------------------------------------------------

    async def user(self, user_id: uuid.UUID) -> User:
        async with self.database.sessions() as session:
            user = await store.user_by_id(session, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def users(
        self, *, email: str | None, cursor: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        async with self.database.sessions() as session:
            users = list(
                await store.list_users(
                    session,
                    email=normalise_email(email) if email else None,
                    after=_parse_cursor(cursor),
                    limit=limit + 1,
                )
            )
        more = len(users) > limit
        users = users[:limit]
        return users, str(users[-1].id) if more else None

    async def set_roles(
        self, user_id: uuid.UUID, roles: Sequence[str], *, by: uuid.UUID | None
    ) -> User:
        wanted = sorted(set(roles))
        async with self.database.sessions() as session, session.begin():
            user = await store.user_by_id(session, user_id)
            if user is None:
                raise NotFound("no such user")
            known = {role.name for role in await store.roles(session, wanted)}
            unknown = [role for role in wanted if role not in known]
            if unknown:
                raise ValidationFailed(
                    errors=[{"field": "roles", "reason": f"unknown role: {', '.join(unknown)}"}]
                )
            previous = user.role_names
            if previous == wanted:
                return user
            if (
                "admin" in previous
                and "admin" not in wanted
                and await store.count_users_with_role(session, "admin") <= 1
            ):
                raise Conflict("this is the last admin; make another admin first")
            user.roles = [UserRole(role_name=role) for role in wanted]
            user.updated_at = _now()
            await self.outbox.add(
                session,
                UserRolesChanged(
                    user_id=user.id, roles=wanted, previous_roles=previous, changed_by=by
                ),
                subject=str(user.id),
            )
            await session.flush()
            await session.refresh(user, ["roles"])
        return user

    # -- roles and permissions -------------------------------------------------------------------

    @staticmethod
    def permissions() -> list[PermissionOut]:
        return [PermissionOut(name=name, description=text) for name, text in PERMISSIONS.items()]

    async def roles(self) -> list[RoleOut]:
        async with self.database.sessions() as session:
            return [_role_out(role) for role in await store.roles(session)]

    async def create_role(self, body: RoleIn) -> RoleOut:
        unknown = sorted(set(body.permissions) - set(PERMISSIONS))
        if unknown:
            raise ValidationFailed(
                errors=[
                    {"field": "permissions", "reason": f"unknown permission: {', '.join(unknown)}"}
                ]
            )
        role = Role(
            name=body.name,
            description=body.description,
            builtin=False,
            permissions=[RolePermission(permission=p) for p in sorted(set(body.permissions))],
        )
        try:
            async with self.database.sessions() as session, session.begin():
                if await session.get(Role, body.name) is not None:
                    raise Conflict(f"the role {body.name!r} exists")
                session.add(role)
        except IntegrityError:
            raise Conflict(f"the role {body.name!r} exists") from None
        return _role_out(role)

    # -- start-up --------------------------------------------------------------------------------

    async def ensure_builtin_roles(self) -> None:
        """Make the built-in roles match the catalogue in code."""
        async with self.database.sessions() as session, session.begin():
            existing = {role.name: role for role in await store.roles(session, list(BUILTIN_ROLES))}
            for name, (description, permissions) in BUILTIN_ROLES.items():
                role = existing.get(name)
                if role is None:
                    role = Role(name=name, builtin=True, permissions=[])
                    session.add(role)
                role.description = description
                role.builtin = True
                if {link.permission for link in role.permissions} != permissions:
                    role.permissions = [RolePermission(permission=p) for p in sorted(permissions)]

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Create the bootstrap admin, or give an existing account the admin role.

        Returns True when the account was created.
        """
        email = normalise_email(email)
        async with self.database.sessions() as session:
            existing = await store.user_by_email(session, email)
        if existing is None:
            await self.register(
                email=email, password=password, full_name="Administrator", roles=["admin"]
            )
            return True
        if "admin" not in existing.role_names:
            await self.set_roles(existing.id, [*existing.role_names, "admin"], by=None)
        return False

    async def any_admin(self) -> bool:
        async with self.database.sessions() as session:
            return await store.count_users_with_role(session, "admin") > 0


def _role_out(role: Role) -> RoleOut:
    return RoleOut(
        name=role.name,
        description=role.description,
        builtin=role.builtin,
        permissions=[link.permission for link in role.permissions],
    )


class ClientAuthFailed(Unauthorized):
    slug, title = "invalid-client", "Client authentication failed"

    def __init__(self) -> None:
        super().__init__("unknown client or wrong secret")
        self.headers["WWW-Authenticate"] = 'Basic realm="sukverse"'


class InvalidScope(BadRequest):
    slug, title = "invalid-scope", "Invalid scope"
