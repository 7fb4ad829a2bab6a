"""The workshop service, as this service asks it whether a workshop exists."""

from __future__ import annotations

import uuid

import aiohttp
import structlog

from sukverse_common.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


class WorkshopLookup:
    """Asks `GET /workshops/{id}` with the caller's own token: the workshop service, not
    this one's replica of its events, knows of a workshop created a moment ago."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self._base = base_url.rstrip("/")
        self._http = http

    async def exists(self, workshop_id: uuid.UUID, *, authorization: str) -> bool:
        """Whether the workshop exists, as the caller may see it; 503 when the workshop
        service cannot say."""
        try:
            async with self._http.get(
                f"{self._base}/workshops/{workshop_id}", headers={"Authorization": authorization}
            ) as response:
                if response.status in (200, 404):
                    return response.status == 200
                log.warning("the workshop service did not look it up", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("the workshop service is not reachable", error=repr(exc))
        raise ServiceUnavailable("the workshop service cannot say if the workshop exists; retry")
