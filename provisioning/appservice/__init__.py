"""Provisioning's inbound adapter: the appservice API Synapse calls (the bridge process).

Transactions, user and alias queries, ping; knocks become join requests and `!call`
choices become managed-room rows.
"""
