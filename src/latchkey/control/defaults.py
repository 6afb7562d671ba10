"""The default configuration: the seed document's scenario, pointed at the local cloud."""

from __future__ import annotations

DEFAULT_ROLE_ARN = "arn:aws:iam::000000000000:role/latchkey-kms"
DEFAULT_AUDIENCE = "sts.amazonaws.com"

TEMPLATE = """\
# latchkey default configuration: the seed scenario (AWS KMS as a Server Workload), with the
# Server Workload forwarding to, and the Credential Provider federating with, the local cloud.
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: aws-kms}}
spec:
  host: kms.us-east-1.amazonaws.com
  port: 443
  tls: true
  appProtocol: http
  forward: {{host: {cloud_host}, port: {cloud_port}, tls: true}}
  authentication: {{method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: kms-federation}}
spec:
  type: aws-sts-federation
  roleArn: {role_arn}
  audience: {audience}
  sessionDuration: 3600
  stsEndpoint: https://{cloud_host}:{cloud_port}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: local-apps}}
spec:
  identities:
    - sourceCidr: 127.0.0.0/8
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: local-apps-to-kms}}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
"""


def render_default_config(cloud_host: str, cloud_port: int) -> str:
    return TEMPLATE.format(
        cloud_host=cloud_host,
        cloud_port=cloud_port,
        role_arn=DEFAULT_ROLE_ARN,
        audience=DEFAULT_AUDIENCE,
    )
