"""``python -m engine.cli`` runs the ``recops`` command (how ``recops up`` starts its children)."""

from engine.cli.main import main

raise SystemExit(main())
