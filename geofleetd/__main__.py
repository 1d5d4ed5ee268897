"""Entry point for ``python -m geofleetd``."""

from geofleetd.cli import main

raise SystemExit(main())
