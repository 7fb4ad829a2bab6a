"""What the operator reads and writes in Kubernetes besides the cohort: rosters, invitations,
and every cohort's phase for its metrics."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from sukverse_operator.reconcile import Invitation
from sukverse_operator.spec import (
    GROUP,
    PLURAL,
    VERSION,
    Cohort,
    RosterError,
    Student,
    StudentsFrom,
    parse_roster,
)

ROSTER_ANNOTATION = "sukverse.io/roster"
MERGE_PATCH = "application/merge-patch+json"


async def api_client() -> client.ApiClient:
    """A client with the same credentials Kopf finds: in-cluster, else the kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


async def roster_text(api: client.ApiClient, namespace: str, source: StudentsFrom) -> str:
    """The CSV a cohort's `studentsFrom` names; a missing ConfigMap or key is a RosterError."""
    ref = source.config_map_key_ref
    try:
        found = await client.CoreV1Api(api).read_namespaced_config_map(ref.name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise RosterError(f"ConfigMap {ref.name} (studentsFrom) does not exist") from None
        raise
    data = found.data or {}
    if ref.key not in data:
        raise RosterError(f"ConfigMap {ref.name} has no key {ref.key} (studentsFrom)")
    return str(data[ref.key])


async def students_from(api: client.ApiClient, cohort: Cohort) -> list[Student]:
    source = cohort.spec.students_from
    if source is None:
        return []
    text = await roster_text(api, cohort.namespace, source)
    return parse_roster(text, source=f"ConfigMap {source.config_map_key_ref.name}")


def invitations_secret_name(cohort: Cohort) -> str:
    return f"{cohort.name}-invitations"[:253]


async def write_invitations(
    api: client.ApiClient, cohort: Cohort, owner: dict[str, Any], invitations: list[Invitation]
) -> None:
    """Add new students' set-password tokens to the cohort's invitations Secret (owned by the
    cohort, so it goes when the cohort does): one key per account, its value naming the
    email and carrying the token."""
    core = client.CoreV1Api(api)
    name = invitations_secret_name(cohort)
    data = {
        str(item.user_id): base64.b64encode(
            json.dumps(
                {"email": item.email, "token": item.token, "expiresAt": item.expires_at}
            ).encode()
        ).decode()
        for item in invitations
    }
    try:
        await core.patch_namespaced_secret(
            name,
            cohort.namespace,
            {"data": data},
            _content_type=MERGE_PATCH,  # type: ignore[call-arg]  # a kwargs option the stubs omit
        )
        return
    except ApiException as exc:
        if exc.status != 404:
            raise
    body: Any = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": cohort.namespace,
            "labels": {"app.kubernetes.io/managed-by": "sukverse-operator"},
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": "Opaque",
        "data": data,
    }
    await core.create_namespaced_secret(cohort.namespace, body)


async def cohort_phases(api: client.ApiClient, namespaces: Sequence[str]) -> dict[str, str]:
    """Every cohort's phase as its status holds it (Pending before its first status), by
    uid: in every namespace, or in those given."""
    objects = client.CustomObjectsApi(api)
    if namespaces:
        pages = [
            await objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            for namespace in namespaces
        ]
    else:
        pages = [await objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)]
    return {
        str(item["metadata"]["uid"]): str((item.get("status") or {}).get("phase") or "Pending")
        for page in pages
        for item in page.get("items", [])
    }
