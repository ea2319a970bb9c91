"""Where words leave: sinks (stdout, typing, meeting transcripts), subtitle formats and the
terminal UI.

It knows nothing of benchmarks.
"""
