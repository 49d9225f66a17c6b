"""``python -m nepzbl_plugin``: the same as the ``nepzbl`` command."""

from .cli import main

raise SystemExit(main())
