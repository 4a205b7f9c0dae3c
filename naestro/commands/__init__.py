"""CLI command groups that live in their own modules; naestro/cli.py registers each with one line."""
