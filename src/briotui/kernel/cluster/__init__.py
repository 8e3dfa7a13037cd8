"""Agents and observers on other machines, over NATS (``briotui serve --nats``)."""
