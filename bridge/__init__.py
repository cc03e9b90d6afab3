"""The Matrix side of Parta: the only code that talks to Synapse's APIs."""
