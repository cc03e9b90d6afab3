"""What provisioning tells the school policy module in Synapse (docs/safety.md)."""
