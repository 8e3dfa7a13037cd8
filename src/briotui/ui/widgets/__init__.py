"""The workstation's widgets: each renders a piece of kernel state and posts messages."""
