"""The ``eco-pulse`` command: one program whose subcommands are the apps' entry points."""
