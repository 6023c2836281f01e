"""The ``recops`` command: one module per command group; nothing below the CLI imports it."""
