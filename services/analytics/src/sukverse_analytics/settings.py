"""Settings of the analytics service."""

from __future__ import annotations

from pydantic import Field

from sukverse_common.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    port: int = 8004

    # The default at-risk thresholds; a workshop may override each of them.
    at_risk_inactive_days: int = Field(default=7, ge=1, le=365)
    at_risk_behind_pace_points: float = Field(default=25.0, gt=0, le=100)
    at_risk_min_quiz_average: float = Field(default=60.0, ge=0, le=100)
    at_risk_max_failed_attempts: int = Field(default=3, ge=1, le=1000)

    # A scrape of /metrics reuses gauges read this recently, so that frequent or
    # concurrent scrapes do not each read every workshop's students.
    gauges_max_age_seconds: float = Field(default=5.0, ge=0, le=300)
