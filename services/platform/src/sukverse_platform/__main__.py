"""`python -m sukverse_platform`: the `sukverse` command."""

import sys

from sukverse_platform import main

sys.exit(main())
