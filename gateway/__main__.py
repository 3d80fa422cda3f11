"""``python -m gateway``: the same command line as the ``gateway`` console script."""

from gateway.cli import main

raise SystemExit(main())
