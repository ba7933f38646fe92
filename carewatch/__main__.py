"""``python -m carewatch``: the same as the ``carewatch`` console script."""

import sys

from carewatch.cli import main

sys.exit(main())
