"""latchkey's OIDC identity provider: signs short-lived JWTs for attested client workloads.

Rule: the signing key never leaves the data directory; only public keys are served.
"""
