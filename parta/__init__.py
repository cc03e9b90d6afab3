"""Parta's command line and deployment glue: settings, secrets, rendering, processes."""
