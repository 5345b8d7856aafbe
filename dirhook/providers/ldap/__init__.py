"""LDAP and Active Directory as a directory source.

- ``config``: what an operator configures (``LdapConfig``);
- ``connection``: binding, the root DSE's controls, paged searches and their errors;
- ``polling``: listings and modifyTimestamp deltas (every server);
- ``syncrepl`` (OpenLDAP, RFC 4533, over ``syncrepl_codec``) and ``dirsync`` (Active
  Directory): incremental passes from a cookie, deletions included;
- ``listener``: the live persistent search that requests a pass per change;
- ``reader``: a full pass's users, read and normalized in a second process;
- ``wire``: a faster decoding of search entries than ldap3's own;
- ``source``: ``LdapSource``, which picks among them for each pass.
"""

from dirhook.dn import common_base
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.source import LdapSource

__all__ = ["LdapConfig", "LdapSource", "common_base"]
