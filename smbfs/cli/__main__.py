"""``python -m smbfs.cli``: the ``smbfs`` command."""

import sys

from smbfs.cli import main

sys.exit(main())
