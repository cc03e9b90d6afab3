"""Provisioning's rules: the services routes and commands call."""
