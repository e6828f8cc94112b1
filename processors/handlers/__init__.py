"""Lambda entry points: each module exposes ``lambda_handler(event, context)``."""
