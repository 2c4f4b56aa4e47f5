"""``python -m colorcore``: see :mod:`colorcore.cli`."""

from colorcore.cli import main

raise SystemExit(main())
