"""The Textual UI: renders kernel state, sends commands to the kernel, never the reverse."""
