"""The edge: an identity-aware forward proxy that re-signs requests with short-lived credentials.

Rule: the steps (identify, authorize, credentials, sign) are plain functions or small objects
with no sockets; ``server.py`` is the one module that awaits the network.
"""
