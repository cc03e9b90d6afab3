"""Real parts for the tests: free ports, PostgreSQL servers, whole deployments."""
