"""The local cloud's KMS: AWS KMS over JSON 1.1 (``TrentService.*``).

Rule: handlers take the authenticated caller and the decoded request, raise ``AwsError`` with
AWS's code, and never see a root key or unwrapped material outside ``keys.py``.
"""
