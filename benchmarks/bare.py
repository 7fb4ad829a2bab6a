"""The baseline server: a bare aiohttp JSON handler, nothing else."""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(_: web.Request) -> web.Response:
    return web.json_response({"id": "0b7e2b8a-2f9f-4a43-9d8e-1f2b3c4d5e6f", "email": "a@b.c"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
