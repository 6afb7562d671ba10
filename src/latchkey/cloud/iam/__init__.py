"""The local cloud's IAM (query protocol): OIDC identity providers, roles, inline policies."""
