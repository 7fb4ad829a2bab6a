"""Use cases of the auth service: each owns its transaction and writes its events to the outbox."""

from __future__ import annotations

import functools
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_auth import store
from sukverse_auth.domain import (
    ADMINISTRATIVE,
    BUILTIN_ROLES,
    DEFAULT_ROLE,
    MACHINE_ROLE,
    PERMISSIONS,
    password_problems,
    scopes_for,
)
from sukverse_auth.models import Role, RolePermission, User, UserRole
from sukverse_auth.passwords import Hasher
from sukverse_auth.ratelimit import FailureWindow
from sukverse_auth.schemas import AccessToken, PermissionOut, RoleIn, RoleOut, TokenPair
from sukverse_auth.settings import AuthSettings
from sukverse_auth.tokens import (
    UNSET_PREFIX,
    TokenIssuer,
    hash_refresh_token,
    new_refresh_token,
    password_fingerprint,
    unusable_password_hash,
)
from sukverse_common.db import Database, after_commit
from sukverse_common.emails import normalise_email
from sukverse_common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from sukverse_common.events.contracts import (
    TokensRevoked,
    UserRegistered,
    UserRolesChanged,
    UserStatusChanged,
)
from sukverse_common.events.outbox import Outbox
from sukverse_common.security import MACHINE_SUBJECT_PREFIX, Revocations

log = structlog.get_logger(__name__)

WRONG_CREDENTIALS = "the email or password is wrong"
USER_CACHE_SIZE = 10_000
GRANTS_CACHE_SECONDS = 5.0
LAST_ADMIN = "this is the last admin; make another admin first"


def _now() -> datetime:
    return datetime.now(UTC)


def _days(seconds: int) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds} s"


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        database: Database,
        outbox: Outbox,
        hasher: Hasher,
        issuer: TokenIssuer,
        revocations: Revocations | None = None,
    ) -> None:
        self.settings = settings
        self.revocations = revocations
        self.database = database
        self.outbox = outbox
        self.hasher = hasher
        self.issuer = issuer
        self.address_failures = FailureWindow(
            limit=settings.login_address_limit, window_seconds=settings.login_address_window_seconds
        )
        self._users: OrderedDict[uuid.UUID, tuple[float, User]] = OrderedDict()
        self._grants_snapshot: tuple[float, dict[str, frozenset[str]]] = (0.0, {})
        self.account_attempts = FailureWindow(
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
        self,
        *,
        email: str,
        password: str,
        full_name: str,
        roles: Sequence[str] = (DEFAULT_ROLE,),
        hashed: str | None = None,
    ) -> User:
        """A new account. `hashed` is the hash of a password drawn at random here, made
        ahead: its strength is known, so it is not checked."""
        email = normalise_email(email)
        if hashed is None:
            self.check_password(password, email=email, full_name=full_name)
        password_hash = hashed or await self.hasher.hash(password)
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

    async def create_user(
        self,
        *,
        email: str,
        full_name: str,
        roles: Sequence[str],
        by: uuid.UUID | None,
        grants_any: bool = True,
    ) -> tuple[User, str, datetime]:
        """Create an account without a password for someone else; its owner sets one with
        the one-time token returned (with its expiry), which is never stored or logged."""
        email = normalise_email(email)
        wanted = sorted(set(roles))
        now = _now()
        ttl = self.settings.set_password_token_ttl_seconds
        try:
            async with self.database.sessions() as session, session.begin():
                known = {role.name for role in await store.roles(session, wanted)}
                unknown = [role for role in wanted if role not in known]
                if unknown:
                    raise ValidationFailed(
                        errors=[{"field": "roles", "reason": f"unknown role: {', '.join(unknown)}"}]
                    )
                await self._may_grant(session, wanted, grants_any=grants_any)
                if await store.user_by_email(session, email) is not None:
                    raise Conflict("an account with this email already exists")
                user = User(
                    email=email,
                    full_name=full_name,
                    password_hash=unusable_password_hash(),
                    is_active=True,
                    failed_logins=0,
                    created_at=now,
                    updated_at=now,
                    roles=[UserRole(role_name=role) for role in wanted],
                )
                session.add(user)
                await session.flush()
                await self.outbox.add(
                    session,
                    UserRegistered(
                        user_id=user.id,
                        email=email,
                        full_name=full_name,
                        roles=wanted,
                        registered_at=now,
                    ),
                    subject=str(user.id),
                )
                await session.refresh(user, ["roles"])
        except IntegrityError:
            raise Conflict("an account with this email already exists") from None
        token = self.issuer.password_token(
            user_id=user.id, fingerprint=password_fingerprint(user.password_hash), ttl_seconds=ttl
        )
        log.info("user created", user_id=str(user.id), by=str(by) if by else None)
        return user, token, now + timedelta(seconds=ttl)

    async def reissue_password_token(
        self, user_id: uuid.UUID, *, by: uuid.UUID | None, grants_any: bool
    ) -> tuple[str, datetime]:
        """A new set-password token for an account that has no password yet (an import or
        an invitation whose token was lost), with its expiry; the tokens issued before it
        stop working. An account holding an administrative role needs `roles:write`."""
        now = _now()
        ttl = self.settings.set_password_token_ttl_seconds
        async with self.database.sessions() as session, session.begin():
            user = await store.user_by_id(session, user_id, for_update=True)
            if user is None:
                raise NotFound("no such user")
            if not user.password_hash.startswith(UNSET_PREFIX):
                raise Conflict("the account has a password already: only its owner changes it")
            await self._may_grant(session, user.role_names, grants_any=grants_any)
            # A new unusable hash: the earlier tokens named the old one.
            user.password_hash = unusable_password_hash()
            user.updated_at = now
        self._users.pop(user_id, None)
        token = self.issuer.password_token(
            user_id=user_id, fingerprint=password_fingerprint(user.password_hash), ttl_seconds=ttl
        )
        log.info("set-password token reissued", user_id=str(user_id), by=str(by) if by else None)
        return token, now + timedelta(seconds=ttl)

    async def set_password(self, *, token: str, password: str) -> None:
        """Set the password of an account with its one-time token; a used, expired or
        forged token is refused alike."""
        named = self.issuer.read_password_token(token)
        invalid = BadRequest("the set-password token is invalid, used or expired")
        if named is None:
            raise invalid
        user_id, fingerprint = named
        async with self.database.sessions() as session:
            user = await store.user_by_id(session, user_id)
        if user is None or not hmac.compare_digest(
            password_fingerprint(user.password_hash), fingerprint
        ):
            raise invalid
        self.check_password(password, email=user.email, full_name=user.full_name)
        password_hash = await self.hasher.hash(password)
        async with self.database.sessions() as session, session.begin():
            current = await store.user_by_id(session, user_id, for_update=True)
            # Checked again under the lock: two uses of one token, only one wins.
            if current is None or not hmac.compare_digest(
                password_fingerprint(current.password_hash), fingerprint
            ):
                raise invalid
            current.password_hash = password_hash
            current.updated_at = _now()
        self._users.pop(user_id, None)
        log.info("password set", user_id=str(user_id))

    async def login(self, *, email: str, password: str, address: str) -> TokenPair:
        email = normalise_email(email)
        retry = self.address_failures.retry_after(address)
        if retry is not None:
            raise TooManyRequests("too many failed logins from this address", retry_after=retry)
        # Count the attempt before the slow check, so concurrent guesses cannot slip past the
        # limits; a success takes it back. Unknown accounts are counted like real ones.
        locked_for = self.account_attempts.retry_after(email)
        self.address_failures.fail(address)
        self.account_attempts.fail(email)
        async with self.database.sessions() as session:
            account = await store.credentials(session, email)
        # Verify whether the account exists or not, so both answers take as long.
        password_ok = await self.hasher.verify(account.password_hash if account else None, password)
        now = _now()
        if account is not None and account.locked_until is not None and account.locked_until > now:
            locked_for = int((account.locked_until - now).total_seconds()) + 1
        if account is not None and locked_for is None and password_ok and account.is_active:
            self.address_failures.release(address)
            self.account_attempts.clear(email)
            async with self.database.sessions() as session, session.begin():
                changes: dict[str, object] = {}
                if account.failed_logins or account.locked_until is not None:
                    changes.update(failed_logins=0, locked_until=None)
                if self.hasher.needs_rehash(account.password_hash):
                    changes["password_hash"] = await self.hasher.hash(password)
                if changes:
                    await store.update_user(session, account.id, **changes)
                return await self._issue_pair(
                    session,
                    user_id=account.id,
                    email=email,
                    roles=account.roles,
                    family_id=uuid.uuid4(),
                    family_started_at=now,
                    generation=account.token_generation,
                    now=now,
                )
        if account is not None and locked_for is None:
            await self._count_failure(account.id, now)
        if locked_for is not None:
            raise TooManyRequests("this account is temporarily locked", retry_after=locked_for)
        raise Unauthorized(WRONG_CREDENTIALS)

    async def _count_failure(self, user_id: uuid.UUID, now: datetime) -> None:
        """Persist a failure (one atomic increment) and lock the account at the limit."""
        async with self.database.sessions() as session, session.begin():
            failures = await store.count_failed_login(session, user_id)
            if failures >= self.settings.login_max_failures:
                until = now + timedelta(seconds=self.settings.login_lockout_seconds)
                await store.update_user(session, user_id, failed_logins=0, locked_until=until)
                log.warning("account locked after failed logins", user_id=str(user_id))

    async def _grants(self, session: AsyncSession) -> dict[str, frozenset[str]]:
        """Every role's permissions, from a snapshot at most GRANTS_CACHE_SECONDS old."""
        expires, grants = self._grants_snapshot
        if expires < time.monotonic():
            grants = await store.all_grants(session)
            self._grants_snapshot = (time.monotonic() + GRANTS_CACHE_SECONDS, grants)
        return grants

    async def _may_grant(
        self,
        session: AsyncSession,
        roles: Iterable[str],
        *,
        grants_any: bool,
        doing: str = "giving or taking away",
    ) -> None:
        """Refuse to give or take away a role with administrative permissions (or to do
        something else to its holders) unless the caller may define roles (`roles:write`)."""
        if grants_any:
            return
        grants = await self._grants(session)
        guarded = sorted(role for role in roles if grants.get(role, frozenset()) & ADMINISTRATIVE)
        if guarded:
            raise Forbidden(f"{doing} {', '.join(guarded)} needs 'roles:write'")

    async def _issue_pair(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        email: str,
        roles: list[str],
        family_id: uuid.UUID,
        family_started_at: datetime,
        generation: int,
        now: datetime,
    ) -> TokenPair:
        refresh, refresh_hash = new_refresh_token()
        idle = now + timedelta(seconds=self.settings.refresh_token_ttl_seconds)
        end = family_started_at + timedelta(seconds=self.settings.refresh_session_lifetime_seconds)
        await store.add_refresh_token(
            session,
            token_hash=refresh_hash,
            family_id=family_id,
            user_id=user_id,
            issued_at=now,
            family_started_at=family_started_at,
            expires_at=min(idle, end),
        )
        access = self.issuer.access_token(
            subject=str(user_id),
            email=email,
            roles=roles,
            scopes=scopes_for(roles, await self._grants(session)),
            session_id=family_id,
            generation=generation,
        )
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self.issuer.ttl_seconds
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; presenting a used one revokes its whole family."""
        now = _now()
        refused = Unauthorized(
            "the refresh token is invalid, expired or revoked: a session's refresh tokens "
            f"expire after {_days(self.settings.refresh_token_ttl_seconds)} unused and "
            f"{_days(self.settings.refresh_session_lifetime_seconds)} after the login"
        )
        async with self.database.sessions() as session, session.begin():
            current = await store.refresh_token(session, hash_refresh_token(refresh_token))
            if current is None or current.revoked_at is not None or current.expires_at <= now:
                raise refused
            # The user's row, locked, serialises a refresh with a logout or a disabling:
            # without it, a refresh could add a token to a family they did not see yet.
            user = await store.user_by_id(session, current.user_id, for_update=True)
            if await store.mark_refresh_token_used(session, current.id, now):
                if user is None or not user.is_active:
                    raise Unauthorized("the account is disabled")
                return await self._issue_pair(
                    session,
                    user_id=user.id,
                    email=user.email,
                    roles=user.role_names,
                    family_id=current.family_id,
                    family_started_at=current.family_started_at,
                    generation=user.token_generation,
                    now=now,
                )
            await session.refresh(current, ["used_at", "revoked_at"])
            if current.used_at is None:
                raise refused  # revoked by a logout or disabling that got there first
            await self._end_session(
                session, current.user_id, current.family_id, now, reason="refresh_reused"
            )
        log.warning("refresh token reused; family revoked", family_id=str(current.family_id))
        raise Unauthorized("the refresh token was already used; its sessions are revoked")

    async def logout(
        self,
        user_id: uuid.UUID,
        *,
        refresh_token: str | None,
        everywhere: bool,
        session_id: uuid.UUID | None = None,
    ) -> None:
        """End one session (the refresh token's, else the one `session_id` names: the
        caller's) or every session of the user; their access tokens stop working too."""
        now = _now()
        async with self.database.sessions() as session, session.begin():
            await store.user_by_id(session, user_id, for_update=True)  # see `refresh`
            if everywhere:
                await store.revoke_families(session, now, user_id=user_id)
                await self._revoke_tokens(session, user_id, now, reason="logout")
                return
            if refresh_token is not None:
                token = await store.refresh_token(session, hash_refresh_token(refresh_token))
                session_id = token.family_id if token and token.user_id == user_id else None
            if session_id is not None:
                await self._end_session(session, user_id, session_id, now, reason="logout")

    async def _end_session(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        family_id: uuid.UUID,
        now: datetime,
        *,
        reason: Literal["logout", "refresh_reused"],
    ) -> None:
        """Revoke a login's refresh tokens, and tell every service to refuse its access
        tokens."""
        await store.revoke_families(session, now, family_id=family_id)
        revoked = TokensRevoked(
            user_id=user_id, session_id=family_id, generation=None, reason=reason, revoked_at=now
        )
        await self._announce(session, revoked)

    async def _revoke_tokens(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        now: datetime,
        *,
        reason: Literal["logout", "roles_removed", "disabled"],
    ) -> None:
        """Revoke every access token the user holds: its tokens' generation moves on, and
        every service is told to refuse those of an earlier one."""
        generation = await store.next_token_generation(session, user_id)
        revoked = TokensRevoked(
            user_id=user_id, session_id=None, generation=generation, reason=reason, revoked_at=now
        )
        await self._announce(session, revoked)

    async def _announce(self, session: AsyncSession, revoked: TokensRevoked) -> None:
        """Tell every service of a revocation, and this one as soon as it commits: a client
        that logs out and calls auth again is refused at once, not after the event's trip."""
        await self.outbox.add(session, revoked, subject=str(revoked.user_id))
        if self.revocations is not None:
            after_commit(session, functools.partial(self.revocations.apply, revoked))

    async def client_credentials(
        self, *, client_id: str, client_secret: str, scope: str | None
    ) -> AccessToken:
        """OAuth 2.0 client-credentials grant (RFC 6749 §4.4) for machine clients."""
        expected = self.settings.service_clients.get(client_id)
        presented = client_secret.encode()
        reference = expected.get_secret_value().encode() if expected else secrets.token_bytes(32)
        if not hmac.compare_digest(presented, reference) or expected is None:
            raise ClientAuthFailed()
        role = self.client_role(client_id)
        async with self.database.sessions() as session:
            grants = await self._grants(session)
            if role not in grants and not await store.roles(session, [role]):
                log.warning("a machine client's role does not exist", client=client_id, role=role)
                raise ClientAuthFailed(f"this client's role {role!r} does not exist")
            granted = scopes_for([role], grants)
        if scope:
            requested = scope.split()
            unknown = sorted(set(requested) - set(granted))
            if unknown:
                raise InvalidScope(f"not granted to this client: {' '.join(unknown)}")
            granted = sorted(set(requested))
        token = self.issuer.access_token(
            subject=f"{MACHINE_SUBJECT_PREFIX}{client_id}",
            email=None,
            roles=[role],
            scopes=granted,
        )
        return AccessToken(
            access_token=token, expires_in=self.issuer.ttl_seconds, scope=" ".join(granted)
        )

    def client_role(self, client_id: str) -> str:
        """The role a machine client's tokens carry."""
        return self.settings.service_client_roles.get(client_id, MACHINE_ROLE)

    # -- users ---------------------------------------------------------------------------------

    async def user(self, user_id: uuid.UUID) -> User:
        """An account, from a snapshot at most `user_cache_seconds` old."""
        now = time.monotonic()
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.database.sessions() as session:
            user = await store.user_by_id(session, user_id)
        if user is None:
            raise NotFound("no such user")
        self._users.pop(user_id, None)
        self._users[user_id] = (now + self.settings.user_cache_seconds, user)
        # Entries expire in the order they came: drop the expired ones from the front, and
        # the oldest while there are too many, so that the cache holds only what is fresh.
        while len(self._users) > 1:
            expires, _ = next(iter(self._users.values()))
            if expires > now and len(self._users) <= USER_CACHE_SIZE:
                break
            self._users.popitem(last=False)
        return user

    async def users(
        self, *, email: str | None, cursor: uuid.UUID | None, limit: int
    ) -> tuple[list[User], str | None]:
        async with self.database.sessions() as session:
            users = list(
                await store.list_users(
                    session,
                    email=normalise_email(email) if email else None,
                    after=cursor,
                    limit=limit + 1,
                )
            )
        more = len(users) > limit
        users = users[:limit]
        return users, str(users[-1].id) if more else None

    async def set_roles(
        self,
        user_id: uuid.UUID,
        roles: Sequence[str],
        *,
        by: uuid.UUID | None,
        grants_any: bool = True,
    ) -> User:
        wanted = sorted(set(roles))
        if by == user_id:
            raise Conflict("you cannot change your own roles; another administrator can")
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
            await self._may_grant(session, set(wanted) ^ set(previous), grants_any=grants_any)
            demoting_admin = "admin" in previous and "admin" not in wanted
            if demoting_admin and len(await store.lock_role_holders(session, "admin")) <= 1:
                raise Conflict(LAST_ADMIN)
            self._users.pop(user.id, None)
            now = _now()
            if set(previous) - set(wanted):
                await self._revoke_tokens(session, user.id, now, reason="roles_removed")
            user.roles = [UserRole(role_name=role) for role in wanted]
            user.updated_at = now
            await self.outbox.add(
                session,
                UserRolesChanged(
                    user_id=user.id, roles=wanted, previous_roles=previous, changed_by=by
                ),
                subject=str(user.id),
            )
            await session.flush()
            if demoting_admin and await store.count_users_with_role(session, "admin") == 0:
                raise Conflict(LAST_ADMIN)  # a concurrent demotion got there first
            await session.refresh(user, ["roles"])
        # Again once committed: a request meanwhile may have cached the account as it was.
        self._users.pop(user.id, None)
        return user

    async def set_active(
        self, user_id: uuid.UUID, active: bool, *, by: uuid.UUID | None, grants_any: bool = True
    ) -> User:
        """Disable an account (it can no longer log in, and its sessions end) or enable it
        again; the change is an event. An administrative account needs `grants_any` (the
        caller may define roles); one's own account and the last active admin cannot be
        disabled."""
        if by == user_id and not active:
            raise Conflict("you cannot disable your own account; another administrator can")
        now = _now()
        async with self.database.sessions() as session, session.begin():
            user = await store.user_by_id(session, user_id, for_update=True)  # see `refresh`
            if user is None:
                raise NotFound("no such user")
            await self._may_grant(
                session,
                user.role_names,
                grants_any=grants_any,
                doing="disabling an account holding",
            )
            if user.is_active == active:
                return user
            if not active and "admin" in user.role_names:
                admins = await store.lock_role_holders(session, "admin")
                if user.id in admins and len(admins) <= 1:
                    raise Conflict(LAST_ADMIN)
            self._users.pop(user.id, None)
            user.is_active = active
            user.updated_at = now
            if not active:
                await store.revoke_families(session, now, user_id=user.id)
                await self._revoke_tokens(session, user.id, now, reason="disabled")
            await self.outbox.add(
                session,
                UserStatusChanged(user_id=user.id, active=active, changed_by=by, changed_at=now),
                subject=str(user.id),
            )
            await session.flush()
            if not active and await store.count_users_with_role(session, "admin") == 0:
                raise Conflict(LAST_ADMIN)  # a concurrent change got there first
        # Again once committed: a request meanwhile may have cached the account as it was.
        self._users.pop(user_id, None)
        log.info("account status changed", user_id=str(user_id), active=active)
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
        finally:
            self._grants_snapshot = (0.0, {})
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
        self._grants_snapshot = (0.0, {})

    async def warn_of_missing_client_roles(self) -> None:
        """Name the configured clients whose role does not exist: their token requests are
        refused until it is defined (POST /roles)."""
        wanted = {client: self.client_role(client) for client in self.settings.service_clients}
        async with self.database.sessions() as session:
            known = {role.name for role in await store.roles(session, sorted(set(wanted.values())))}
        for client, role in sorted(wanted.items()):
            if role not in known:
                log.warning(
                    "a machine client's role does not exist; its tokens are refused until "
                    "the role is defined",
                    client=client,
                    role=role,
                )

    async def ensure_admin(self, email: str, password: str, *, hashed: str | None = None) -> bool:
        """Create the bootstrap admin; returns True when the account was created.

        An existing account is made admin only when the configured password is its password:
        naming someone else's email must not hand them the platform.
        """
        email = normalise_email(email)
        async with self.database.sessions() as session:
            account = await store.credentials(session, email)
        if account is None:
            await self.register(
                email=email,
                password=password,
                full_name="Administrator",
                roles=["admin"],
                hashed=hashed,
            )
            return True
        if "admin" in account.roles:
            return False
        if not await self.hasher.verify(account.password_hash, password):
            raise RuntimeError(
                "SUKVERSE_ADMIN_EMAIL names an existing account that is not an admin and "
                "SUKVERSE_ADMIN_PASSWORD is not its password; refusing to make it admin"
            )
        await self.set_roles(account.id, [*account.roles, "admin"], by=None)
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

    def __init__(self, detail: str = "unknown client or wrong secret") -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = 'Basic realm="sukverse"'


class InvalidScope(BadRequest):
    slug, title = "invalid-scope", "Invalid scope"
