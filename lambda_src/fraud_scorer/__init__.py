"""The scoring Lambda's logic, in small modules; `handler.py` beside this package is the entry point."""
