"""A cohort's journey through all six services, each its own process, on PostgreSQL and
Kafka: an admin imports the people from a CSV file, they set their passwords, the
instructor builds a workshop with a quiz, a certificate and at-risk thresholds, six
students get as far as they get, and then analytics' figures and at-risk list equal those
worked out by hand, exactly the students who meet the criteria hold a certificate, its PDF
reads right and its Open Badges credential verifies against the published key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import RSAKey
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader

from tests.open_badges import status_bit, violations

# Six processes start one after the other; on a busy shared machine that alone may take a
# minute, so this test has more time than the default.
pytestmark = [pytest.mark.real, pytest.mark.timeout(300)]

ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
CLIENT_ID, CLIENT_SECRET = "user_mgmt", "user-mgmt-client-secret-0123456789"
PASSWORD = "correct horse battery staple"
PUBLIC_URL = "https://certificates.sukverse.test"  # where verifiers reach the certificates
WORKSHOP_TITLE = "Kubernetes from scratch"
DEADLINE_SECONDS = 30

# Saved from a spreadsheet: a byte order mark, semicolons, CRLF, aliased column names, a
# blank line, one row for an account that exists (the instructor: her role is added) and
# one row that cannot be imported.
ROSTER = (
    "\ufeffE-mail;Full name;Role;Organisation\r\n"
    "ada@example.com;Ada Lovelace;student;Analytical Engines\r\n"
    "bob@example.com;Bob Kahn;student;\r\n"
    "cyd@example.com;Cyd Ødegård;student;\r\n"
    "\r\n"
    "dee@example.com;Dee Hock;student;\r\n"
    "eli@example.com;Eli Whitney;student;\r\n"
    "fay@example.com;Fay Wray;;\r\n"
    "grace@example.com;Grace Hopper;instructor;\r\n"
    "not-an-email;Nobody;student;\r\n"
).encode()
STUDENTS = ("ada", "bob", "cyd", "dee", "eli", "fay")

# Four true/false questions of a point each: a score is k correct answers of 4.
QUESTIONS = [
    ("etcd keeps the cluster's state.", True),
    ("The kubelet schedules pods onto nodes.", False),
    ("A Service gives a set of pods one stable address.", True),
    ("kubectl writes to etcd directly.", False),
]

# What each student does: substeps done of the 4, and their quiz attempts (correct answers
# of 4 each; pass mark 75%, up to 3 attempts, graded by the highest).
PLAN: dict[str, tuple[int, list[int]]] = {
    "ada": (4, [4]),  # all done, 100%: meets every criterion
    "bob": (3, [2, 2]),  # 75% done, fails twice at 50%
    "cyd": (4, [2, 4]),  # all done, fails at 50% then passes at 100% (grade 100)
    "dee": (2, [4]),  # half done, passes at 100%
    "eli": (4, [3]),  # all done, passes at 75%: under the certificate's 80% average
    "fay": (0, []),  # enrolled, does nothing
}


# The events the producers publish, once each: auth 8 registrations (the bootstrap admin,
# grace, 6 imported) and grace's new role; workshop 1 created, 6 enrollments, 4+3+4+2+4 =
# 17 substeps, 2+1+2+1+2 = 8 steps and 3 workshops completed; quiz 7 attempts, 4 passes.
PUBLISHED = {"auth": 9.0, "workshop": 35.0, "quiz": 11.0, "certificate": 2.0}


class Client:
    """Calls one service as one caller; every call states the status it expects."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        self.http, self.url, self.token = http, url, token

    def as_(self, token: str) -> Client:
        return Client(self.http, self.url, token)

    async def raw(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        """The status, body and content type of a call, which must answer `status`."""
        sent = {**(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        async with self.http.request(
            method, self.url + path, json=json_body, data=data, headers=sent
        ) as response:
            body = await response.read()
            assert response.status == status, f"{method} {path}: {response.status} {body!r}"
            return response.status, body, response.content_type

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        _, raw, _ = await self.raw(method, path, json_body=body, status=status)
        return json.loads(raw) if raw else None

    async def status_of(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A call whose status is not known in advance: the status and the JSON body."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None


async def until(fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str) -> Any:
    """Poll `fetch` until `done` holds of its answer; that answer (fails with the last one
    seen after the deadline)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        seen = await fetch()
        if done(seen):
            return seen
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {seen!r}"
        await asyncio.sleep(0.1)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition: name, labels, value."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(text: str, name: str) -> float:
    return sum(value for sample, _, value in samples(text) if sample == name)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_a_cohort_from_csv_import_to_verified_certificates_across_six_services(
    launch: Callable[..., Any],
    new_database: Callable[[], Awaitable[str]],
    kafka_server: Any,
) -> None:
    bus = {
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": f"p{uuid.uuid4().hex[:10]}.",
    }
    auth = launch(
        "auth",
        {
            **bus,
            "SUKVERSE_DATABASE_URL": await new_database(),
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
            "SUKVERSE_SERVICE_CLIENTS": json.dumps({CLIENT_ID: CLIENT_SECRET}),
        },
    )
    cluster = {**bus, "SUKVERSE_MODE": "cluster", "SUKVERSE_AUTH_URL": auth.url}
    own = {
        "user_mgmt": {
            "SUKVERSE_AUTH_CLIENT_ID": CLIENT_ID,
            "SUKVERSE_AUTH_CLIENT_SECRET": CLIENT_SECRET,
        },
        "workshop": {},
        "quiz": {},
        "analytics": {},
        "certificate": {"SUKVERSE_PUBLIC_BASE_URL": PUBLIC_URL},
    }
    started = [
        launch(
            name,
            {**cluster, **settings, "SUKVERSE_DATABASE_URL": await new_database()},
            migrate=True,
        )
        for name, settings in own.items()
    ]
    url = {"auth": auth.url, **{service.name: service.url for service in started}}

    async with aiohttp.ClientSession() as http:
        identity = Client(http, auth.url)
        admin = identity.as_((await identity.call("POST", "/auth/login", ADMIN))["access_token"])

        async def login(email: str) -> str:
            tokens = await identity.call(
                "POST", "/auth/login", {"email": email, "password": PASSWORD}
            )
            return str(tokens["access_token"])

        # -- 1. the people: the instructor signs up, the admin imports the roster --------
        grace = await identity.call(
            "POST",
            "/auth/register",
            {"email": "grace@example.com", "password": PASSWORD, "full_name": "Grace Hopper"},
            status=201,
        )
        users = Client(http, url["user_mgmt"], admin.token)
        _, accepted, _ = await users.raw(
            "POST",
            "/imports",
            data=ROSTER,
            headers={"Content-Type": "text/csv; charset=utf-8"},
            status=202,
        )
        import_id = json.loads(accepted)["id"]
        report = await until(
            lambda: users.call("GET", f"/imports/{import_id}"),
            lambda body: body["status"] not in ("pending", "running"),
            "the import to finish",
        )
        assert report["status"] == "done", report
        assert report["counts"] == {"created": 6, "updated": 1, "unchanged": 0, "failed": 1}
        assert report["progress"] == {"done": 8, "total": 8}
        [bad] = report["errors"]
        assert (bad["line"], bad["email"], bad["outcome"]) == (10, "not-an-email", "failed")
        assert bad["reason"].startswith("email: bad email"), bad
        rows = (await users.call("GET", f"/imports/{import_id}/rows"))["items"]
        assert [(row["line"], row["outcome"]) for row in rows] == [
            (2, "created"),
            (3, "created"),
            (4, "created"),
            (6, "created"),
            (7, "created"),
            (8, "created"),
            (9, "updated"),
            (10, "failed"),
        ]
        by_email = {row["email"]: row for row in rows}
        assert by_email["grace@example.com"]["user_id"] == grace["id"]
        assert by_email["grace@example.com"]["set_password_token"] is None
        ids: dict[str, str] = {}
        tokens: dict[str, str] = {}
        for name in STUDENTS:
            row = by_email[f"{name}@example.com"]
            reset = {"token": row["set_password_token"], "password": PASSWORD}
            await identity.call("POST", "/auth/password", reset, status=204)
            ids[name], tokens[name] = row["user_id"], await login(f"{name}@example.com")
        await identity.call("POST", "/auth/password", reset, status=400)  # one use only
        profile = await users.call("GET", f"/profiles/{ids['ada']}")
        assert {k: profile[k] for k in ("email", "full_name", "organisation", "roles")} == {
            "email": "ada@example.com",
            "full_name": "Ada Lovelace",
            "organisation": "Analytical Engines",
            "roles": ["student"],
        }
        teacher = await login("grace@example.com")  # issued after the import made her one
        assert (await identity.as_(teacher).call("GET", "/auth/me"))["roles"] == [
            "instructor",
            "student",
        ]

        # -- 2. the instructor builds the workshop, its quiz, certificate and thresholds --
        workshops = Client(http, url["workshop"], teacher)
        quizzes = Client(http, url["quiz"], teacher)
        analytics = Client(http, url["analytics"], teacher)
        certificates = Client(http, url["certificate"], teacher)
        workshop = await workshops.call(
            "POST",
            "/workshops",
            {
                "title": WORKSHOP_TITLE,
                "description": "Clusters by hand",
                "steps": [
                    {
                        "title": "Control plane",
                        "substeps": [
                            {"title": "etcd", "body": "Start **etcd**."},
                            {"title": "API server", "body": "Start it."},
                        ],
                    },
                    {
                        "title": "Workloads",
                        "substeps": [
                            {"title": "A pod", "body": "`kubectl run`"},
                            {"title": "A service", "body": "`kubectl expose`"},
                        ],
                    },
                ],
            },
            status=201,
        )
        workshop_id = workshop["id"]
        substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
        quiz = await quizzes.call(
            "POST",
            "/quizzes",
            {
                "title": "Cluster basics",
                "workshop_id": workshop_id,
                "pass_mark": 75,
                "max_attempts": 3,
                "grading": "highest",
                "questions": [
                    {"kind": "true_false", "prompt": prompt, "points": 1, "answer": answer}
                    for prompt, answer in QUESTIONS
                ],
            },
            status=201,
        )
        enrolled = await workshops.call(
            "POST",
            f"/workshops/{workshop_id}/enrollments",
            {"user_ids": [ids[name] for name in STUDENTS]},
        )
        assert enrolled["created"] == 6

        # Analytics and certificates learn of the workshop (and who teaches it) by events.
        thresholds = await until(
            lambda: analytics.status_of(
                "PUT", f"/analytics/workshops/{workshop_id}/thresholds", {"max_failed_attempts": 2}
            ),
            lambda answer: answer[0] != 404,
            "analytics to learn of the workshop",
        )
        assert thresholds == (
            200,
            {
                "workshop_id": workshop_id,
                "inactive_days": 7,
                "behind_pace_points": 25.0,
                "min_quiz_average": 60.0,
                "max_failed_attempts": 2,
                "overridden": ["max_failed_attempts"],
            },
        )
        criteria = {
            "min_completion_percent": 100.0,
            "min_quiz_average": 80.0,
            "required_quiz_ids": [quiz["id"]],
        }
        template = await until(
            lambda: certificates.status_of(
                "POST",
                "/templates",
                {
                    "workshop_id": workshop_id,
                    "title": "Certificate of completion",
                    "body": "{name} completed {workshop} on {date}.",
                    "criteria": criteria,
                },
            ),
            lambda answer: answer[0] != 403,
            "the certificate service to learn who teaches the workshop",
        )
        assert (template[0], template[1]["criteria"]) == (201, criteria)

        # -- 3. the students work -------------------------------------------------------
        for name, (done, _) in PLAN.items():
            for substep in substeps[:done]:
                progress = await workshops.as_(tokens[name]).call(
                    "POST", f"/workshops/{workshop_id}/progress", {"substep_id": substep}
                )
            if done:
                assert (progress["percent"], progress["completed"]) == (done * 25, done == 4)

        async def attempt(name: str, correct: int) -> tuple[float, bool]:
            taker = quizzes.as_(tokens[name])
            started = await taker.call("POST", f"/quizzes/{quiz['id']}/attempts", status=201)
            truth = dict(QUESTIONS)
            right = {prompt for prompt, _ in QUESTIONS[:correct]}
            answers = [
                {
                    "question_id": question["id"],
                    "value": truth[prompt] if prompt in right else not truth[prompt],
                }
                for question in started["questions"]
                for prompt in [question["prompt"]]
            ]
            await taker.call("PUT", f"/attempts/{started['id']}/answers", {"answers": answers})
            result = await taker.call("POST", f"/attempts/{started['id']}/submit")
            return result["percent"], result["passed"]

        async def enrolled_in_quiz(name: str) -> int:
            status, _ = await quizzes.as_(tokens[name]).status_of("GET", f"/quizzes/{quiz['id']}")
            return status

        results: dict[str, list[tuple[float, bool]]] = {}
        for name, (_, scores) in PLAN.items():
            if scores:
                await until(
                    lambda name=name: enrolled_in_quiz(name),
                    lambda status: status == 200,
                    f"the quiz service to learn {name}'s enrollment",
                )
            results[name] = [await attempt(name, correct) for correct in scores]
        assert results == {
            "ada": [(100, True)],
            "bob": [(50, False), (50, False)],
            "cyd": [(50, False), (100, True)],
            "dee": [(100, True)],
            "eli": [(75, True)],
            "fay": [],
        }

        # -- 4. every event reaches analytics and certificates -------------------------
        async def metrics(service: str) -> str:
            async with http.get(f"{url[service]}/metrics") as response:
                return await response.text()

        async def published() -> dict[str, float]:
            return {
                service: total(await metrics(service), "sukverse_events_published_total")
                for service in PUBLISHED
            }

        # Each event once: what the people did, counted by hand.
        await until(published, lambda counts: counts == PUBLISHED, "every event to be published")

        async def consumed() -> dict[str, float]:
            return {
                service: total(await metrics(service), "sukverse_events_handled_total")
                for service in ("analytics", "certificate")
            }

        await until(
            consumed,
            lambda seen: (
                seen["analytics"]
                >= PUBLISHED["workshop"] + PUBLISHED["quiz"] + PUBLISHED["certificate"]
                and seen["certificate"]
                >= PUBLISHED["auth"] + PUBLISHED["workshop"] + PUBLISHED["quiz"]
            ),
            "analytics and certificates to consume every event",
        )

        # -- 5. analytics' figures equal those worked out by hand ----------------------
        figures = await analytics.call("GET", f"/analytics/workshops/{workshop_id}")
        assert figures == {
            "workshop_id": workshop_id,
            "title": WORKSHOP_TITLE,
            "archived": False,
            "enrolled": 6,
            "completed": 3,  # ada, cyd, eli
            # completion 100 + 75 + 100 + 50 + 100 + 0 = 425 over 6 students
            "completion_percent": 70.833,
            # bands of 10 points, 100 in the last: fay 0, dee 50, bob 75; ada, cyd, eli 100
            "completion_histogram": [1, 0, 0, 0, 0, 1, 0, 1, 0, 3],
            # grades (highest attempt) 100 + 50 + 100 + 100 + 75 = 425 over 5 graded
            "average_quiz_score": 85.0,
            # of 0, 50, 75, 100, 100, 100: the mean of the middle two
            "median_percent": 87.5,
            "at_risk": 3,  # bob, dee, fay, as below
            "certificates_issued": 2,  # ada and cyd, as below
        }
        students = await analytics.call("GET", f"/analytics/workshops/{workshop_id}/students")
        name_of = {user_id: name for name, user_id in ids.items()}
        assert {
            name_of[s["user_id"]]: (
                s["percent"],
                s["substeps_done"],
                s["completed"],
                s["quiz_average"],
                s["failed_attempts"],
                s["risk"],
            )
            for s in students["items"]
        } == {
            "ada": (100.0, 4, True, 100.0, 0, "none"),
            "bob": (75.0, 3, False, 50.0, 2, "high"),
            "cyd": (100.0, 4, True, 100.0, 1, "none"),  # completed: never at risk
            "dee": (50.0, 2, False, 100.0, 0, "medium"),
            "eli": (100.0, 4, True, 75.0, 0, "none"),
            "fay": (0.0, 0, False, None, 0, "medium"),
        }
        at_risk = await analytics.call("GET", f"/analytics/at-risk?workshop_id={workshop_id}")
        assert {
            name_of[s["user_id"]]: (s["risk"], [(r["code"], r["message"]) for r in s["reasons"]])
            for s in at_risk["items"]
        } == {
            # no one is inactive (all activity is minutes old); the median is 87.5
            "bob": (
                "high",
                [
                    ("low_quiz_average", "quiz average 50% is under 60%"),
                    ("repeated_failures", "2 failed quiz attempts (threshold 2)"),
                ],
            ),
            "dee": (
                "medium",
                [("behind_pace", "37.5 points behind the cohort's median of 87.5% (threshold 25)")],
            ),
            "fay": (
                "medium",
                [("behind_pace", "87.5 points behind the cohort's median of 87.5% (threshold 25)")],
            ),
        }
        # The completion histogram above, as students per range of percent.
        histogram = dict(zip(range(0, 100, 10), [1, 0, 0, 0, 0, 1, 0, 1, 0, 3], strict=True))
        expected_gauges = {
            ("sukverse_workshop_enrolled", workshop_id, None): 6,
            ("sukverse_workshop_completion_percent", workshop_id, None): 70.833,
            ("sukverse_workshop_average_quiz_score", workshop_id, None): 85.0,
            ("sukverse_workshop_at_risk", workshop_id, None): 3,
            ("sukverse_workshop_certificates_issued", workshop_id, None): 2,
            **{
                ("sukverse_workshop_completion_students", workshop_id, f"{low}-{low + 10}"): count
                for low, count in histogram.items()
            },
        }

        async def gauges() -> dict[tuple[str, str | None, str | None], float]:
            return {
                (name, labels.get("workshop_id"), labels.get("range")): value
                for name, labels, value in samples(await metrics("analytics"))
                if name.startswith("sukverse_workshop_")
            }

        # The gauges are a snapshot at most gauges_max_age_seconds old, and the scrapes
        # that waited for the events above may have taken one before the last of them.
        await until(gauges, lambda seen: seen == expected_gauges, "analytics' gauges")
        exposition = await metrics("analytics")
        assert not any(user_id in exposition for user_id in ids.values())  # no per-student

        # -- 6. exactly ada and cyd hold a certificate ---------------------------------
        issued = await certificates.call("GET", f"/certificates?workshop_id={workshop_id}")
        assert sorted(name_of[c["user_id"]] for c in issued["items"]) == ["ada", "cyd"]
        for name in STUDENTS:
            own_list = await certificates.as_(tokens[name]).call("GET", "/certificates")
            assert len(own_list["items"]) == (name in ("ada", "cyd")), name
        [ada_summary] = [c for c in issued["items"] if c["user_id"] == ids["ada"]]
        ada_certificates = certificates.as_(tokens["ada"])
        ada_certificate = await ada_certificates.call("GET", f"/certificates/{ada_summary['id']}")
        assert (ada_certificate["name"], ada_certificate["workshop"]) == (
            "Ada Lovelace",
            WORKSHOP_TITLE,
        )
        code = ada_certificate["verification_code"]
        assert ada_certificate["verify_url"] == f"{PUBLIC_URL}/verify/{code}"
        issued_on = ada_certificate["issued_at"][:10]
        assert ada_certificate["body"] == f"Ada Lovelace completed {WORKSHOP_TITLE} on {issued_on}."

        _, pdf, content_type = await ada_certificates.raw(
            "GET", f"/certificates/{ada_summary['id']}.pdf"
        )
        assert content_type == "application/pdf"
        reader = PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) == 1
        text = reader.pages[0].extract_text()
        for expected in ("Certificate of completion", "Ada Lovelace", WORKSHOP_TITLE, code):
            assert expected in text, (expected, text)
        [cyd_summary] = [c for c in issued["items"] if c["user_id"] == ids["cyd"]]
        _, cyd_pdf, _ = await certificates.as_(tokens["cyd"]).raw(
            "GET", f"/certificates/{cyd_summary['id']}.pdf"
        )
        assert "Cyd Ødegård" in PdfReader(io.BytesIO(cyd_pdf)).pages[0].extract_text()

        # -- 7. the credential verifies against the published key ----------------------
        _, credential_bytes, content_type = await ada_certificates.raw(
            "GET", f"/certificates/{ada_summary['id']}/credential"
        )
        assert content_type == "text/plain"
        credential = credential_bytes.decode()
        header = json.loads(unb64url(credential.split(".")[0]))
        assert header["alg"] == "RS256" and header["kid"].startswith(f"{PUBLIC_URL}/keys/")
        public = Client(http, url["certificate"])
        jwks = await public.call("GET", "/.well-known/jwks.json")
        [published_key] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
        by_thumbprint = await public.call("GET", f"/keys/{header['kid'].rsplit('/', 1)[1]}")
        assert (by_thumbprint["n"], by_thumbprint["e"]) == (published_key["n"], published_key["e"])
        key = RSAKey.import_key(published_key)
        claims = jwt.decode(credential, key, algorithms=["RS256"]).claims
        assert "https://www.w3.org/ns/credentials/v2" in claims["@context"]
        assert "OpenBadgeCredential" in claims["type"]
        assert claims["issuer"]["id"] == claims["iss"] == f"{PUBLIC_URL}/issuer"
        assert claims["validFrom"].startswith(issued_on)
        assert claims["sub"] == claims["credentialSubject"]["id"] == f"urn:uuid:{ids['ada']}"
        assert claims["credentialSubject"]["achievement"]["criteria"] == {
            "narrative": f"Completed at least 100% of the workshop {WORKSHOP_TITLE}; "
            "an average quiz grade of at least 80%; passed the 1 required quiz(zes)."
        }
        assert violations(credential, by_thumbprint) == []  # Open Badges 3.0, every rule
        # The holder: her name, and the email she registered with, hashed with a salt.
        subject = claims["credentialSubject"]
        [email, name] = subject["identifier"]
        assert (name["identityType"], name["identityHash"]) == ("ext:name", "Ada Lovelace")
        salted = ("ada@example.com" + email["salt"]).encode()
        assert email["identityHash"] == "sha256$" + hashlib.sha256(salted).hexdigest()
        status_entry = claims["credentialStatus"]

        async def status() -> int:
            list_path = status_entry["statusListCredential"].removeprefix(PUBLIC_URL)
            _, status_list, _ = await public.raw("GET", list_path)
            return status_bit(status_entry, status_list.decode(), by_thumbprint)

        assert await status() == 0
        head, payload, signature = credential.split(".")
        forged = unb64url(payload).replace(b"Kubernetes", b"Kubernetez", 1)
        assert forged != unb64url(payload)
        with pytest.raises(BadSignatureError):
            jwt.decode(f"{head}.{b64url(forged)}.{signature}", key, algorithms=["RS256"])

        # -- 8. anyone verifies the code; an admin revokes it ---------------------------
        assert await public.call("GET", f"/verify/{code}") == {
            "status": "valid",
            "name": "Ada Lovelace",
            "workshop": WORKSHOP_TITLE,
            "issued_on": issued_on,
        }
        revoked = await certificates.as_(admin.token).call(
            "POST", f"/certificates/{ada_summary['id']}/revoke", {"reason": "issued in error"}
        )
        assert (revoked["status"], revoked["revoked_reason"]) == ("revoked", "issued in error")
        assert (await public.call("GET", f"/verify/{code}"))["status"] == "revoked"
        assert await status() == 1  # the credential she holds now reads as revoked
        await ada_certificates.raw(
            "GET", f"/certificates/{ada_summary['id']}/credential", status=410
        )
        # Analytics hears of the revocation: one certificate in force.
        await until(
            lambda: analytics.call("GET", f"/analytics/workshops/{workshop_id}"),
            lambda figures: figures["certificates_issued"] == 1,
            "analytics to count the revocation",
        )
        assert await public.call("GET", "/verify/no-such-code") == {
            "status": "unknown",
            "name": None,
            "workshop": None,
            "issued_on": None,
        }
