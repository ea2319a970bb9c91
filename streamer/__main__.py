"""``python -m streamer``: Ctrl-C while the modules load exits quietly (130), no traceback."""

try:
    from streamer.cli import main
except KeyboardInterrupt:
    raise SystemExit(130) from None

raise SystemExit(main())
