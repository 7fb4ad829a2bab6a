"""Issuing: exactly once per (student, workshop), whatever order the facts arrive in."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from sukverse_common.events.contracts import EventData

Event = tuple[EventData, str]


def _is_issued(event: Any) -> bool:
    return bool(event.type == "io.sukverse.certificate.certificate.issued.v1")


async def test_issues_once_whatever_the_order(api: Any) -> None:
    admin = api.account("admin", "admin")
    workshop_id, q1, q2 = await api.new_workshop(), uuid.uuid4(), uuid.uuid4()
    facts = api.facts(workshop_id)
    template = await api.create_template(
        admin,
        workshop_id,
        min_completion_percent=100,
        min_quiz_average=70,
        required_quiz_ids=[str(q1)],
    )

    def story(student: uuid.UUID) -> list[Event]:
        return [
            facts.substep(student, 2),
            facts.substep(student, 4),
            facts.completed(student),
            facts.attempt(student, q1, 80, minute=1),
            facts.passed(student, q1),
            facts.attempt(student, q2, 60, minute=2),
        ]

    students = [uuid.uuid4() for _ in range(4)]
    orders = [
        story(students[0]),
        list(reversed(story(students[1]))),
        [story(students[2])[i] for i in (4, 0, 5, 2, 3, 1)],
        [story(students[3])[i] for i in (5, 3, 1, 4, 2, 0)],
    ]
    for order in orders:
        await api.publish_and_wait(*order)
        # A redelivery of the same facts as new events, then a late bad grade: no effect.
    for student in students:
        await api.publish_and_wait(*story(student)[2:5])
        await api.publish_and_wait(facts.attempt(student, q2, 0, minute=99))

    issued = await api.wait_events(_is_issued, len(students))
    assert sorted(e.data["user_id"] for e in issued) == sorted(map(str, students))
    found = await api.certificates(admin, workshop_id=str(workshop_id))
    assert sorted(c["user_id"] for c in found) == sorted(map(str, students))
    assert {c["template_id"] for c in found} == {template["id"]}
    assert {c["status"] for c in found} == {"valid"}
    assert len({c["verification_code"] for c in found}) == len(students)
    assert all(len(c["verification_code"]) >= 32 for c in found)

    # Pages: three, then the last one, with no cursor after it.
    query = {"workshop_id": str(workshop_id), "limit": "3"}
    first = await (
        await api.client.get("/certificates", params=query, headers=admin.headers)
    ).json()
    assert len(first["items"]) == 3
    query["cursor"] = first["next_cursor"]
    second = await (
        await api.client.get("/certificates", params=query, headers=admin.headers)
    ).json()
    assert second["next_cursor"] is None
    paged = [c["id"] for c in first["items"] + second["items"]]
    assert sorted(paged) == sorted(c["id"] for c in found)


async def test_no_certificate_until_every_criterion_holds(api: Any) -> None:
    admin = api.account("admin", "admin")
    workshop_id, q1 = await api.new_workshop(), uuid.uuid4()
    facts = api.facts(workshop_id)
    await api.create_template(
        admin,
        workshop_id,
        min_completion_percent=75,
        min_quiz_average=70,
        required_quiz_ids=[str(q1)],
    )
    behind, low, unpassed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await api.publish_and_wait(
        facts.substep(behind, 2),
        facts.attempt(behind, q1, 90),
        facts.passed(behind, q1),
        facts.substep(low, 4),
        facts.attempt(low, q1, 60),
        facts.passed(low, q1),
        facts.substep(unpassed, 3),
        facts.attempt(unpassed, q1, 75),
    )
    assert await api.certificates(admin, workshop_id=str(workshop_id)) == []
    # Each gets the missing fact: the substep, a better latest grade, the pass.
    await api.publish_and_wait(
        facts.substep(behind, 3),
        facts.attempt(low, q1, 80, minute=5),
        facts.passed(unpassed, q1),
    )
    found = await api.certificates(admin, workshop_id=str(workshop_id))
    assert sorted(c["user_id"] for c in found) == sorted(map(str, (behind, low, unpassed)))
    assert len(await api.wait_events(_is_issued, 3)) == 3


async def test_template_issues_to_those_who_already_meet_it(api: Any) -> None:
    admin = api.account("admin", "admin")
    workshop_id = await api.new_workshop()
    facts = api.facts(workshop_id)
    done, half = uuid.uuid4(), uuid.uuid4()
    await api.publish_and_wait(facts.completed(done), facts.substep(half, 2))
    template = await api.create_template(admin, workshop_id, min_completion_percent=100)
    found = await api.certificates(admin, workshop_id=str(workshop_id))
    assert [c["user_id"] for c in found] == [str(done)]

    response = await api.client.patch(
        f"/templates/{template['id']}",
        json={"title": "New title", "criteria": {"min_completion_percent": 50}},
        headers=admin.headers,
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["criteria"]["min_completion_percent"] == 50
    found = await api.certificates(admin, workshop_id=str(workshop_id))
    assert sorted(c["user_id"] for c in found) == sorted([str(done), str(half)])
    issued = await api.wait_events(_is_issued, 2)
    assert sorted(e.data["user_id"] for e in issued) == sorted([str(done), str(half)])
    # A certificate keeps the text it was issued with; new ones take the changed text.
    titles = {}
    for item in found:
        response = await api.client.get(f"/certificates/{item['id']}", headers=admin.headers)
        titles[item["user_id"]] = (await response.json())["title"]
    assert titles == {str(done): f"Certificate of {workshop_id}", str(half): "New title"}
    assert {e.data["workshop_id"] for e in issued} == {str(workshop_id)}


async def test_template_and_facts_at_once_miss_nobody(api: Any) -> None:
    """A template written while completions are being handled: everyone who completed gets
    exactly one certificate, whichever transaction saw the other."""
    admin = api.account("admin", "admin")
    workshop_id = await api.new_workshop()
    facts = api.facts(workshop_id)
    students = [uuid.uuid4() for _ in range(20)]
    completions = [facts.completed(student) for student in students]
    await asyncio.gather(
        api.publish_and_wait(*completions),
        api.create_template(admin, workshop_id, min_completion_percent=100),
    )
    issued = await api.wait_events(_is_issued, len(students))
    assert sorted(e.data["user_id"] for e in issued) == sorted(map(str, students))
    found = await api.certificates(admin, workshop_id=str(workshop_id))
    assert len(found) == len(students)


async def test_an_issuer_that_loses_its_status_index_draws_again(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two issuers draw the same free status index at once: the one whose insert comes
    second finds it taken when the first commits, and draws again, rather than issue
    nothing or fail."""
    from alembic import command
    from sqlalchemy import insert

    from sukverse_certificate import store
    from sukverse_certificate.app import MIGRATIONS
    from sukverse_certificate.issuing import issue_if_met
    from sukverse_certificate.models import Base, Certificate, Completion, Template
    from sukverse_common.db import Database, alembic_config, create_engine
    from sukverse_common.events.outbox import Outbox

    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    database = Database(create_engine(settings.effective_database_url))
    now = datetime.now(UTC)
    template = Template(
        id=uuid.uuid4(),
        workshop_id=uuid.uuid4(),
        title="T",
        body="B",
        min_completion_percent=100,
        min_quiz_average=None,
        required_quiz_ids=[],
        created_at=now,
        updated_at=now,
    )
    student = uuid.uuid4()
    async with database.sessions() as session, session.begin():
        session.add(template)
        session.add(Completion(workshop_id=template.workshop_id, user_id=student, percent=100))
    draws = iter([5, 5, 9])  # the other issuer's, then this one's two
    monkeypatch.setattr(store.secrets, "randbelow", lambda _: next(draws))
    try:
        async with database.sessions() as other, other.begin():
            index = await store.free_status_index(other)
            await other.execute(
                insert(Certificate).values(
                    id=uuid.uuid4(),
                    template_id=template.id,
                    workshop_id=uuid.uuid4(),
                    user_id=uuid.uuid4(),
                    verification_code="other",
                    title="T",
                    body="B",
                    issued_at=now,
                    status_index=index,
                    identity_salt="0" * 32,
                )
            )

            async def issue() -> bool:
                async with database.sessions() as session, session.begin():
                    outbox = Outbox(Base.metadata.tables["outbox"])
                    return await issue_if_met(
                        session, outbox, template=template, user_id=student, now=now
                    )

            issuing = asyncio.create_task(issue())
            await asyncio.sleep(0.5)  # the issuer drew 5 and waits on the other's insert
        assert await issuing
        async with database.sessions() as session:
            indexes = {
                c.user_id: c.status_index
                for c in (await session.scalars(select(Certificate))).all()
            }
        assert indexes[student] == 9
        assert sorted(indexes.values()) == [5, 9]
    finally:
        await database.engine.dispose()
