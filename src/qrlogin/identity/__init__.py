"""Ports for "who is signed in on this approver" and "start a session for this requester",
and the device a request comes from.

The built-in accounts and sessions are one adapter; a host app that keeps its own users and
sessions provides another (docs/embedding.md).
"""
