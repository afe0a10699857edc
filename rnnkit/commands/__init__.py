"""Command-line subcommands, one module per application."""
