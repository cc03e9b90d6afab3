"""What every part of Parta stands on: settings, logs, files, naming, web plumbing.

It imports none of the parts (matrix, provisioning, widgets, the `parta` command).
"""
