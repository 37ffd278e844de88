"""Local accounts: password hashing and policy (the login page builds on this)."""
