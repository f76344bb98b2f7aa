"""Sessions: one opaque 256-bit token per signed-in device, stored as SHA-256."""
