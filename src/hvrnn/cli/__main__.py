"""``python -m hvrnn.cli`` (what ``torchrun ... -m hvrnn.cli train ...`` runs)."""

import sys

from hvrnn.cli import main

sys.exit(main())
