"""The workstation's screens and dialogs."""
