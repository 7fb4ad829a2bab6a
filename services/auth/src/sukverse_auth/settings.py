"""Settings of the auth service."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import MappingProxyType

from pydantic import Field, SecretStr, field_validator

from sukverse_common.settings import MAX_ACCESS_TOKEN_SECONDS, ServiceSettings

# Machine clients with a role of their own by default.
CLIENT_ROLES = MappingProxyType({"operator": "operator"})
CGROUP = Path("/sys/fs/cgroup")


def available_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may use: those it may run on, and no more than its cgroup's
    CPU quota (a container's CPU limit), rounded up. `os.cpu_count()` counts the node's."""
    runnable = getattr(os, "sched_getaffinity", None)  # Linux's; elsewhere, the machine's
    cpus = len(runnable(0)) if runnable else os.cpu_count() or 1
    quota = cpu_quota(cgroup)
    return max(1, cpus if quota is None else min(cpus, math.ceil(quota)))


def cpu_quota(cgroup: Path = CGROUP) -> float | None:
    """The cgroup's CPU quota in CPUs, from cgroup v2's `cpu.max` or else v1's CFS files;
    None when there is none or it cannot be read."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        share = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # `max`: no quota
        return None
    return share if share > 0 else None  # v1 writes -1 for none


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    port: int = 8000

    admin_email: str | None = None
    admin_password: SecretStr | None = None
    signing_key_file: Path | None = None
    service_clients: dict[str, SecretStr] = Field(default_factory=dict)
    # The role whose permissions each machine client's tokens carry, by client id; the
    # operator has its own unless named here, any other client gets `service`.
    service_client_roles: dict[str, str] = Field(default_factory=lambda: dict(CLIENT_ROLES))

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=MAX_ACCESS_TOKEN_SECONDS)
    set_password_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=300)
    # A login's refresh tokens: each expires unused after the idle timeout (a refresh makes
    # the next), and none outlives the session's lifetime from the login.
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)  # idle timeout
    refresh_session_lifetime_seconds: int = Field(default=90 * 24 * 3600, ge=3600)

    password_min_length: int = Field(default=8, ge=8)
    password_max_length: int = Field(default=128, ge=64, le=1024)
    # Above OWASP's minimum (46 MiB, one pass): 46 MiB, two passes, about 40 ms a hash.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=46 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    hash_workers: int = Field(default_factory=available_cpus, ge=1)

    user_cache_seconds: float = Field(default=2.0, ge=0)

    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1)
    login_address_limit: int = Field(default=30, ge=1)
    login_address_window_seconds: int = Field(default=60, ge=1)

    @field_validator("service_client_roles")
    @classmethod
    def _operator_keeps_its_role(cls, roles: dict[str, str]) -> dict[str, str]:
        """Naming other clients' roles does not hand the operator the wider `service`."""
        return {**CLIENT_ROLES, **roles}
