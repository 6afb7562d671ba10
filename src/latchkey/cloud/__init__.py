"""The local cloud: an AWS-compatible KMS, with the IAM and STS pieces federation needs.

Rule: every request is authenticated with SigV4 (or is one of the few unsigned STS calls),
authorized by policy, and audited before it is answered.
"""
