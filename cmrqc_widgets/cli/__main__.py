"""``python -m cmrqc_widgets.cli``: the ``cmrqc`` command."""

import sys

from .core import main

sys.exit(main())
