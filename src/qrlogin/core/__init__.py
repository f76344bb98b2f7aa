"""Pure, I/O-free heart of qrlogin: the login request state machine, policies, tokens, errors.

Nothing here imports a framework, a database driver or asyncio: give it a clock and data,
get decisions back.
"""
