"""The appservice API Synapse calls: transactions, user and alias queries, ping."""
