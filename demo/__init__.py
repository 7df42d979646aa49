"""`make demo` (`python -m demo`): the whole pipeline on one machine, on the emulators in `emulators/`.

The pipeline object (`demo.pipeline.LocalPipeline`) is shared by the demo, the end-to-end tests and
the end-to-end benchmark; `demo.tally` counts what Redis really holds.
"""
