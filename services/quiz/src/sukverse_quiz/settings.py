"""Settings of the quiz service."""

from __future__ import annotations

from pydantic import Field

from sukverse_common.settings import ServiceSettings


class QuizSettings(ServiceSettings):
    service_name: str = "quiz"
    port: int = 8003

    # Answers saved up to this long after an attempt's deadline still count, and a submit
    # within it is not late: it absorbs network and clock jitter.
    submit_grace_seconds: float = Field(default=2.0, ge=0, le=60)
    start_retries: int = Field(default=5, ge=1, le=20)
