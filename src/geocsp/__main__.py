"""``python -m geocsp``."""

import sys

from geocsp.cli.main import main

sys.exit(main())
