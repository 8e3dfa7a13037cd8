"""The ``briotui`` command line: argparse front end over the kernel's command API."""
