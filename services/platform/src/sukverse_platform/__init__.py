"""The sukverse command: the whole platform in one process, or one service alone."""

from __future__ import annotations

import gc
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """`sukverse`. The collector is paused while the command's modules load: they are
    hundreds of thousands of objects, all kept, and collecting among them as they come
    is a tenth of a service's start-up. A service resumes it when ready
    (`freeze_startup_objects`), every other command once its arguments are read."""
    gc.disable()
    from sukverse_platform import cli

    return cli.main(argv)
