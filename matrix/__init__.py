"""The one layer that knows Synapse's APIs: client, typed errors, accounts, the bot.

Nothing outside this package builds a `/_matrix/` or `/_synapse/` path (the appservice's
own routes aside, which Synapse calls).
"""
