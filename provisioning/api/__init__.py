"""HTTP routes of the provisioning service: they do HTTP only and call services."""
