"""``python -m convnp``: the same command line as the ``convnp`` script."""

import sys

from convnp.cli.main import main

sys.exit(main())
