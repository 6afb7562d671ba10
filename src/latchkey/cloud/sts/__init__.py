"""The local cloud's STS (query protocol): web-identity federation and caller identity."""
