"""Example apps that use qrlogin (not part of the installed package)."""
