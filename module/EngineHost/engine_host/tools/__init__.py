"""Command-line tools that ship with the engine host (run as `python3 -m engine_host.tools.<name>`)."""
