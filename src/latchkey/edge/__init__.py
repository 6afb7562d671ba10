"""The edge: an identity-aware forward proxy that re-signs requests with short-lived credentials.

Rule: the steps (identify, authorize, credentials, sign) are plain functions or small objects
with no sockets (``clienthello.py``, ``iptables.py``, ``scrub.py``, ``inject.py`` too);
``server.py``, ``transparent.py``, ``relay.py`` and ``upstream.py`` await the network.
"""
