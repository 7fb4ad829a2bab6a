"""CSV imports of users: accepted at once, carried out a few rows at a time in the
background through the auth service, with a status that shows how far they got."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from sukverse_common.db import Database
from sukverse_common.errors import NotFound, Problem, ValidationFailed
from sukverse_common.security import Principal
from sukverse_user_mgmt import csvimport, store
from sukverse_user_mgmt.authclient import AuthClient, AuthUnavailable
from sukverse_user_mgmt.models import Import, ImportRow, Profile
from sukverse_user_mgmt.schemas import (
    ImportAccepted,
    ImportCounts,
    ImportOut,
    ImportProgress,
    ImportRowOut,
)
from sukverse_user_mgmt.settings import UserMgmtSettings

log = structlog.get_logger(__name__)

PENDING, RUNNING, DONE, FAILED, INTERRUPTED = "pending", "running", "done", "failed", "interrupted"
CREATED, UPDATED, UNCHANGED, ROW_FAILED = "created", "updated", "unchanged", "failed"
NO_IMPORT = "no such import"
BATCH = 200
MAX_ERRORS_SHOWN = 1000
WRITE_ATTEMPTS = 3
LOOKAHEAD = 4  # rows read ahead of those recorded: this many times import_concurrency
DEADLOCK_OR_SERIALIZATION = ("40P01", "40001")  # PostgreSQL's SQLSTATEs


COUNTERS = {
    CREATED: Import.created,
    UPDATED: Import.updated,
    UNCHANGED: Import.unchanged,
    ROW_FAILED: Import.failed,
}


@dataclass
class AuthAnswer:
    """What auth said about one row: the account (None in a dry run of a new one), the
    one-time token of an account it created, or why the row fails."""

    user: dict[str, Any] | None = None
    token: str | None = None
    created: bool = False
    roles_changed: bool = False
    reason: str | None = None


class TooLarge(Problem):
    status, slug, title = 413, "too-large", "The file is too large"


def _now() -> datetime:
    return datetime.now(UTC)


def profile_changes(profile: Profile | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The profile fields a row would change (all it sets when there is no profile yet)."""
    if profile is None:
        return {name: value for name, value in fields.items() if value is not None}
    return {name: value for name, value in fields.items() if getattr(profile, name) != value}


class ImportService:
    """Runs imports a few rows at a time; each row's result, its profile change and the
    import's counters are committed together and in file order, so a stop part-way leaves
    them consistent."""

    def __init__(self, *, database: Database, auth: AuthClient, settings: UserMgmtSettings) -> None:
        self.database = database
        self.auth = auth
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def mark_interrupted(self) -> None:
        """Imports a previous process left unfinished: say so, and where they stopped."""
        async with self.database.sessions() as session, session.begin():
            await session.execute(
                update(Import)
                .where(Import.status.in_([PENDING, RUNNING]))
                .values(
                    status=INTERRUPTED,
                    error="the service stopped during this import; rows done are kept, "
                    "rerun the file to finish it",
                    updated_at=_now(),
                    finished_at=_now(),
                )
            )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- use cases ------------------------------------------------------------------------

    async def start(self, caller: Principal, data: bytes, *, dry_run: bool) -> ImportAccepted:
        """Check the file and record its rows, then carry them out in the background."""
        if len(data) > self.settings.import_max_bytes:
            raise TooLarge(
                f"the file may be at most {self.settings.import_max_bytes} bytes",
                errors=[{"field": "file", "reason": "too large"}],
            )
        known_roles = await self.auth.role_names()
        try:
            rows = await asyncio.to_thread(
                csvimport.parse,
                data,
                known_roles=known_roles,
                max_rows=self.settings.import_max_rows,
            )
        except csvimport.CsvError as exc:
            problem = TooLarge if exc.too_large else ValidationFailed
            raise problem(exc.detail, errors=[{"field": "file", "reason": exc.detail}]) from None
        now = _now()
        failed = sum(1 for row in rows if row.reason)
        record = Import(
            id=uuid.uuid4(),
            created_by=caller.subject,
            status=PENDING,
            dry_run=dry_run,
            total=len(rows),
            done=failed,
            created=0,
            updated=0,
            unchanged=0,
            failed=failed,
            created_at=now,
            updated_at=now,
        )
        async with self.database.sessions() as session, session.begin():
            session.add(record)
            await session.flush()
            await session.execute(
                insert(ImportRow),
                [
                    {
                        "import_id": record.id,
                        "line": row.line,
                        # A failed row may hold a value too long to keep whole.
                        "email": _clip(row.email, 320),
                        "full_name": _clip(row.full_name, 200),
                        "role": _clip(row.role, 100),
                        "fields": row.fields,
                        "outcome": ROW_FAILED if row.reason else PENDING,
                        "reason": row.reason,
                    }
                    for row in rows
                ],
            )
        task = asyncio.create_task(self._run(record.id), name=f"import-{record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ImportAccepted(id=record.id, status=PENDING)

    async def status(self, caller: Principal, import_id: uuid.UUID) -> ImportOut:
        async with self.database.sessions() as session:
            record = await self._visible(session, caller, import_id)
            errors = (
                await session.scalars(
                    select(ImportRow)
                    .where(ImportRow.import_id == import_id, ImportRow.outcome == ROW_FAILED)
                    .order_by(ImportRow.line)
                    .limit(MAX_ERRORS_SHOWN)
                )
            ).all()
            stopped_at = None
            if record.status in (FAILED, INTERRUPTED):
                stopped_at = await session.scalar(
                    select(ImportRow.line)
                    .where(ImportRow.import_id == import_id, ImportRow.outcome == PENDING)
                    .order_by(ImportRow.line)
                    .limit(1)
                )
            return ImportOut(
                id=record.id,
                status=record.status,
                dry_run=record.dry_run,
                counts=ImportCounts(
                    created=record.created,
                    updated=record.updated,
                    unchanged=record.unchanged,
                    failed=record.failed,
                ),
                progress=ImportProgress(done=record.done, total=record.total),
                stopped_at_line=stopped_at,
                error=record.error,
                errors=[_row_out(row) for row in errors],
                created_at=record.created_at,
                updated_at=record.updated_at,
                finished_at=record.finished_at,
            )

    async def rows(
        self,
        caller: Principal,
        import_id: uuid.UUID,
        *,
        outcome: str | None,
        after: int | None,
        limit: int,
    ) -> tuple[list[ImportRowOut], str | None]:
        """An import's rows in file order, with the set-password tokens of new accounts."""
        async with self.database.sessions() as session:
            await self._visible(session, caller, import_id)
            query = (
                select(ImportRow)
                .where(ImportRow.import_id == import_id)
                .order_by(ImportRow.line)
                .limit(limit + 1)
            )
            if outcome:
                query = query.where(ImportRow.outcome == outcome)
            if after is not None:
                query = query.where(ImportRow.line > after)
            found = (await session.scalars(query)).all()
        page = [_row_out(row, with_token=True) for row in found[:limit]]
        return page, str(page[-1].line) if len(found) > limit else None

    async def _visible(self, session: Any, caller: Principal, import_id: uuid.UUID) -> Import:
        record = await session.get(Import, import_id)
        if record is None or record.created_by != caller.subject:
            raise NotFound(NO_IMPORT)
        assert isinstance(record, Import)
        return record

    # -- the background run ---------------------------------------------------------------

    async def _run(self, import_id: uuid.UUID) -> None:
        try:
            await self._set_status(import_id, RUNNING)
            async with self.database.sessions() as session:
                record = await session.get(Import, import_id)
                assert record is not None
                dry_run = record.dry_run
            await self._carry_out_all(import_id, dry_run=dry_run)
            await self._set_status(import_id, DONE)
        except asyncio.CancelledError:
            raise  # the process stops: the next start marks it interrupted
        except AuthUnavailable as exc:
            await self._set_status(import_id, FAILED, error=f"{exc.detail}; rerun the file")
        except Exception as exc:
            log.exception("an import failed", import_id=str(import_id))
            await self._set_status(import_id, FAILED, error=f"internal error: {type(exc).__name__}")

    async def _pending_rows(self, import_id: uuid.UUID) -> AsyncGenerator[ImportRow, None]:
        """The rows still to do, in file order, read a batch at a time."""
        after = 0
        while True:
            async with self.database.sessions() as session:
                batch: Sequence[ImportRow] = (
                    await session.scalars(
                        select(ImportRow)
                        .where(
                            ImportRow.import_id == import_id,
                            ImportRow.outcome == PENDING,
                            ImportRow.line > after,
                        )
                        .order_by(ImportRow.line)
                        .limit(BATCH)
                    )
                ).all()
            if not batch:
                return
            for row in batch:
                yield row
            after = batch[-1].line

    async def _carry_out_all(self, import_id: uuid.UUID, *, dry_run: bool) -> None:
        """Ask auth about up to `import_concurrency` rows at once, and record the answers
        in file order, those ready together in one transaction: the rows done are always
        the file's first ones, so a stop leaves no gap before where it stopped. Rows up
        to LOOKAHEAD times that far ahead wait their turn, so auth stays busy while a
        transaction records the answers before them."""
        width = self.settings.import_concurrency
        gate = asyncio.Semaphore(width)
        rows = self._pending_rows(import_id)
        asked: deque[tuple[ImportRow, asyncio.Task[AuthAnswer]]] = deque()
        exhausted = False

        async def ask(row: ImportRow) -> AuthAnswer:
            async with gate:
                return await self._ask_auth(row, dry_run=dry_run)

        async def ask_more() -> None:
            nonlocal exhausted
            while not exhausted and len(asked) < width * LOOKAHEAD:
                row = await anext(rows, None)
                if row is None:
                    exhausted = True
                    return
                asked.append((row, asyncio.create_task(ask(row))))

        try:
            await ask_more()
            while asked:
                row, task = asked.popleft()
                ready = [(row, await task)]
                while asked and _answered(asked[0][1]):
                    row, task = asked.popleft()
                    ready.append((row, task.result()))
                await ask_more()
                await self._record(import_id, ready, dry_run=dry_run)
        finally:
            for _, task in asked:
                task.cancel()
            await asyncio.gather(*(task for _, task in asked), return_exceptions=True)
            await rows.aclose()

    async def _set_status(
        self, import_id: uuid.UUID, status: str, error: str | None = None
    ) -> None:
        finished = _now() if status in (DONE, FAILED) else None
        async with self.database.sessions() as session, session.begin():
            await session.execute(
                update(Import)
                .where(Import.id == import_id)
                .values(status=status, error=error, updated_at=_now(), finished_at=finished)
            )

    async def _ask_auth(self, row: ImportRow, *, dry_run: bool) -> AuthAnswer:
        """One row's account in auth: found, created, or given the row's role."""
        assert row.email is not None and row.full_name is not None and row.role is not None
        answer = AuthAnswer()
        try:
            if dry_run:
                answer.user = await self.auth.find_user(row.email)
                answer.created = answer.user is None
            else:
                # Most rows of an import are new accounts: create first, look up on conflict.
                answer.user = await self.auth.create_user(
                    email=row.email, full_name=row.full_name, roles=[row.role]
                )
                if answer.user is None:  # the account exists already
                    answer.user = await self.auth.find_user(row.email)
                else:
                    answer.token = answer.user.pop("set_password_token", None)
                    answer.created = True
                    answer.user.pop("set_password_expires_at", None)
            user = answer.user
            if user is not None and not answer.created and row.role not in user["roles"]:
                answer.roles_changed = True
                if not dry_run:
                    answer.user = await self.auth.set_roles(
                        uuid.UUID(user["id"]), sorted({*user["roles"], row.role})
                    )
        except AuthUnavailable:
            raise
        except Problem as exc:
            answer.reason = exc.detail or exc.title
            if exc.errors:
                answer.reason = "; ".join(
                    f"{e.get('field')}: {e.get('reason')}" for e in exc.errors
                )
        return answer

    async def _record(
        self,
        import_id: uuid.UUID,
        ready: list[tuple[ImportRow, AuthAnswer]],
        *,
        dry_run: bool,
    ) -> None:
        """The rows' results, their profiles and the import's counters, in one transaction.
        The event consumer may write the same profiles at the same time (SQLite busy, the
        same new row inserted first, or a deadlock of two transactions each inserting what
        the other waits for): then one row per transaction, each read again and retried."""
        try:
            await self._write_results(import_id, ready, dry_run=dry_run)
            return
        except DBAPIError as exc:
            if not _lost_race(exc):
                raise
            log.info(
                "import rows met another writer of their profiles; recording them one by one",
                import_id=str(import_id),
                rows=len(ready),
                sqlstate=getattr(exc.orig, "sqlstate", None),
                error=type(exc).__name__,
            )
        for item in ready:
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await self._write_results(import_id, [item], dry_run=dry_run)
                    break
                except DBAPIError as exc:
                    if not _lost_race(exc) or attempt == WRITE_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))

    async def _write_results(
        self,
        import_id: uuid.UUID,
        ready: list[tuple[ImportRow, AuthAnswer]],
        *,
        dry_run: bool,
    ) -> None:
        """A statement or two for all the rows together: their profiles read at once, the
        new ones inserted at once, the rows' results updated at once."""
        async with self.database.sessions() as session, session.begin():
            ids = {
                uuid.UUID(answer.user["id"])
                for _, answer in ready
                if answer.user is not None and answer.reason is None
            }
            profiles: dict[uuid.UUID, Profile] = {}
            if ids:
                found = await session.scalars(select(Profile).where(Profile.user_id.in_(ids)))
                profiles = {profile.user_id: profile for profile in found}
            counts: Counter[str] = Counter()
            results: list[dict[str, Any]] = []
            for row, answer in ready:
                outcome = self._record_row(session, profiles, row, answer, dry_run=dry_run)
                counts[outcome] += 1
                user = answer.user
                results.append(
                    {
                        "import_id": import_id,
                        "line": row.line,
                        "outcome": outcome,
                        "reason": answer.reason,
                        "user_id": uuid.UUID(user["id"]) if user is not None else None,
                        "set_password_token": answer.token,
                    }
                )
            await session.execute(update(ImportRow), results)
            await session.execute(
                update(Import)
                .where(Import.id == import_id)
                .values(
                    {
                        column.key: column + counts[outcome]
                        for outcome, column in COUNTERS.items()
                        if counts[outcome]
                    }
                    | {"done": Import.done + len(ready), "updated_at": _now()}
                )
            )

    def _record_row(
        self,
        session: Any,
        profiles: dict[uuid.UUID, Profile],
        row: ImportRow,
        answer: AuthAnswer,
        *,
        dry_run: bool,
    ) -> str:
        """One row's profile change, given the profiles there are; its outcome."""
        if answer.reason is not None:
            return ROW_FAILED
        user = answer.user
        profile = profiles.get(uuid.UUID(user["id"])) if user is not None else None
        changes = profile_changes(profile, row.fields) if not answer.created else row.fields
        outcome = CREATED if answer.created else UNCHANGED
        if answer.roles_changed or (changes and not answer.created):
            outcome = UPDATED
        if user is not None and not dry_run:
            _write_profile(session, profile, user, changes)
        return outcome


def _write_profile(
    session: Any, profile: Profile | None, user: dict[str, Any], changes: dict[str, Any]
) -> Profile:
    """The profile as auth's account and the row's fields make it; a new one when the
    user has none yet (the registration event makes it registered)."""
    now = _now()
    if profile is None:
        profile = Profile(
            user_id=uuid.UUID(user["id"]),
            registered=False,
            roles=[],
            role_rows=[],
            email=user["email"],
            full_name=user["full_name"],
            display_name=user["full_name"],
            created_at=now,
            updated_at=now,
        )
        session.add(profile)
    store.set_roles(profile, user["roles"])
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.name_key = profile.display_name.lower() if profile.display_name else None
    profile.updated_at = now
    return profile


def _lost_race(exc: DBAPIError) -> bool:
    """Whether a write failed for another transaction's sake, so that trying again helps."""
    if isinstance(exc, OperationalError | IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in DEADLOCK_OR_SERIALIZATION


def _answered(task: asyncio.Task[AuthAnswer]) -> bool:
    """Whether a row's question to auth has an answer (not an error) already."""
    return task.done() and not task.cancelled() and task.exception() is None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def _row_out(row: ImportRow, *, with_token: bool = False) -> ImportRowOut:
    return ImportRowOut(
        line=row.line,
        email=row.email,
        outcome=row.outcome,
        reason=row.reason,
        user_id=row.user_id,
        set_password_token=row.set_password_token if with_token else None,
    )
