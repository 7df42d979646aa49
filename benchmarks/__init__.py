"""`make bench`: each module here exposes `run(quick: bool) -> str` returning a Markdown section."""
