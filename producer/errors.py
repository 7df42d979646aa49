"""Errors that end a run with one clear line on stderr instead of a traceback."""


class ProducerError(Exception):
    """A problem the user can fix (bad option, missing file, unknown stream, no credentials)."""
