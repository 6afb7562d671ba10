"""latchkey: workloads that call AWS hold no AWS keys.

Parts: ``edge`` (the proxy), ``idp`` (OIDC issuer), ``control`` (configuration),
``cloud`` (a local AWS: KMS, IAM, STS), ``store`` (durable state), ``aws`` (pure wire
knowledge), ``crypto`` (the only package that imports ``cryptography``).
"""

__version__ = "0.1.0"
