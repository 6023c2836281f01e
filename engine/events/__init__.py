"""Events: tracking what users do (idempotent, into a Redis stream)."""
