"""Pure AWS wire knowledge: SigV4, the JSON 1.1 and query/XML protocols, errors, ARNs, policies.

Rule: nothing in this package performs I/O or reads the clock; time comes in as a parameter.
"""
