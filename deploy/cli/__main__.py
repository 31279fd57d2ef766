"""``python -m deploy.cli``: the ``tipsync`` command without its console script."""

import sys

from deploy.cli import main

sys.exit(main())
