"""qrlogin: sign in on a new device by scanning a QR code with a device already signed in."""

__version__ = "0.1.0"
