"""IAM operations: the dispatch table. Handlers live in one module per aggregate.

``app.py`` reads ``NAMESPACE``, ``OPERATIONS``, ``READ_ONLY``, ``AUDITABLE_PARAMS`` and builds
``Call``; ``sts`` and ``bootstrap`` use ``provider_url_key``, ``int_param`` and ``unique_id``.
"""

from __future__ import annotations

from latchkey.cloud.iam import inline, keys, policies, providers, roles, users
from latchkey.cloud.iam.common import (
    DENIED,
    NAMESPACE,
    Call,
    Handler,
    int_param,
    provider_url_key,
    unique_id,
)

__all__ = [
    "AUDITABLE_PARAMS",
    "DENIED",
    "NAMESPACE",
    "OPERATIONS",
    "READ_ONLY",
    "SECRET_RESPONSE_MEMBERS",
    "Call",
    "Handler",
    "int_param",
    "provider_url_key",
    "unique_id",
]

OPERATIONS: dict[str, Handler] = {
    # OpenID Connect providers
    "CreateOpenIDConnectProvider": providers.create_open_id_connect_provider,
    "GetOpenIDConnectProvider": providers.get_open_id_connect_provider,
    "ListOpenIDConnectProviders": providers.list_open_id_connect_providers,
    "DeleteOpenIDConnectProvider": providers.delete_open_id_connect_provider,
    "AddClientIDToOpenIDConnectProvider": providers.add_client_id_to_open_id_connect_provider,
    "RemoveClientIDFromOpenIDConnectProvider": (
        providers.remove_client_id_from_open_id_connect_provider
    ),
    "UpdateOpenIDConnectProviderThumbprint": providers.update_open_id_connect_provider_thumbprint,
    "TagOpenIDConnectProvider": providers.tag_open_id_connect_provider,
    "UntagOpenIDConnectProvider": providers.untag_open_id_connect_provider,
    "ListOpenIDConnectProviderTags": providers.list_open_id_connect_provider_tags,
    # roles
    "CreateRole": roles.create_role,
    "GetRole": roles.get_role,
    "ListRoles": roles.list_roles,
    "DeleteRole": roles.delete_role,
    "UpdateAssumeRolePolicy": roles.update_assume_role_policy,
    "UpdateRole": roles.update_role,
    "UpdateRoleDescription": roles.update_role_description,
    "TagRole": roles.tag_role,
    "UntagRole": roles.untag_role,
    "ListRoleTags": roles.list_role_tags,
    "ListInstanceProfilesForRole": roles.list_instance_profiles_for_role,
    "PutRolePolicy": inline.put_role_policy,
    "GetRolePolicy": inline.get_role_policy,
    "DeleteRolePolicy": inline.delete_role_policy,
    "ListRolePolicies": inline.list_role_policies,
    # managed policies
    "CreatePolicy": policies.create_policy,
    "GetPolicy": policies.get_policy,
    "GetPolicyVersion": policies.get_policy_version,
    "ListPolicies": policies.list_policies,
    "DeletePolicy": policies.delete_policy,
    "TagPolicy": policies.tag_policy,
    "UntagPolicy": policies.untag_policy,
    "ListPolicyTags": policies.list_policy_tags,
    "AttachRolePolicy": policies.attach_role_policy,
    "DetachRolePolicy": policies.detach_role_policy,
    "ListAttachedRolePolicies": policies.list_attached_role_policies,
    "AttachUserPolicy": policies.attach_user_policy,
    "DetachUserPolicy": policies.detach_user_policy,
    "ListAttachedUserPolicies": policies.list_attached_user_policies,
    # users and their keys
    "CreateUser": users.create_user,
    "GetUser": users.get_user,
    "ListUsers": users.list_users,
    "DeleteUser": users.delete_user,
    "TagUser": users.tag_user,
    "UntagUser": users.untag_user,
    "ListUserTags": users.list_user_tags,
    "PutUserPolicy": inline.put_user_policy,
    "GetUserPolicy": inline.get_user_policy,
    "DeleteUserPolicy": inline.delete_user_policy,
    "ListUserPolicies": inline.list_user_policies,
    "CreateAccessKey": keys.create_access_key,
    "ListAccessKeys": keys.list_access_keys,
    "UpdateAccessKey": keys.update_access_key,
    "DeleteAccessKey": keys.delete_access_key,
}
READ_ONLY = frozenset(name for name in OPERATIONS if name.startswith(("Get", "List")))
# Request parameters the audit trail may record (an allow-list: never secrets, never policy
# documents, never tag values).
AUDITABLE_PARAMS = frozenset(
    {
        "Url", "OpenIDConnectProviderArn", "ClientID",
        "RoleName", "UserName", "PolicyName", "PolicyArn", "VersionId", "Path", "PathPrefix",
        "Scope", "OnlyAttached", "PolicyUsageFilter", "MaxSessionDuration", "Description",
        "AccessKeyId", "Status", "Marker", "MaxItems",
    }
)  # fmt: skip
# Response members that must never reach the audit trail (CreateAccessKey's AccessKey holds
# the secret). app.py records no IAM response elements today; if it starts, drop these.
SECRET_RESPONSE_MEMBERS = frozenset({"AccessKey"})
