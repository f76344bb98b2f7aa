"""The cross-device handshake: login request flows on top of the store and the event bus."""
