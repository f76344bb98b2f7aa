"""Built-in users and passwordless sign-in for the first device (email code and link)."""
