"""The composition root: the `parta` command, the local deployment, the supervisor.

It imports every part and is imported by none of them.
"""
