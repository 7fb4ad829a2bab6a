"""The machine clients of the embedded platform and their secrets, kept in the data directory."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

CLIENTS_FILE = "clients.json"
EMBEDDED_CLIENTS = ("operator", "user_mgmt")


def read(data_dir: Path) -> dict[str, str]:
    """The client secrets the clients file holds, by client id; {} when it does not exist."""
    path = data_dir / CLIENTS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON") from exc
    if not isinstance(document, dict) or not all(
        isinstance(secret, str) for secret in document.values()
    ):
        raise ValueError(f"{path} must be a JSON object of client ids and their secrets")
    return {str(client): str(secret) for client, secret in document.items()}


def load_or_create(data_dir: Path) -> dict[str, str]:
    """The secrets of the embedded clients, generated into the clients file (mode 0600) for
    any it lacks; the file keeps them, and any other client it holds, across restarts."""
    clients = read(data_dir)
    missing = [client for client in EMBEDDED_CLIENTS if not clients.get(client)]
    if missing:
        clients = {**clients, **{client: secrets.token_urlsafe(32) for client in missing}}
        write_private(data_dir / CLIENTS_FILE, json.dumps(clients, indent=2, sort_keys=True) + "\n")
    return {client: clients[client] for client in EMBEDDED_CLIENTS}


def write_private(path: Path, text: str) -> None:
    """Replace the file in one step (a crash leaves the old file or the new one), readable
    by its owner alone whatever the umask, in a directory only its owner can enter."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
