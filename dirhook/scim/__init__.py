"""SCIM 2.0 directories: identity providers push users and groups to
``/scim/v2/{directory_id}/``.

The protocol (RFC 7643/7644: discovery, filters, PATCH, ETags, errors) is scim2-server's,
the storage is ours (``storage.py``: the ``scim_resources`` table), as scim2-server
separates them. Every accepted write is then projected through the same sync engine as
LDAP passes (normalize → diff → roles → outbox) and the endpoints are woken at once.
"""
