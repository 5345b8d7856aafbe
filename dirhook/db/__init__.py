# Every table on the metadata (migrations and schema checks read Base.metadata).
from dirhook.db import scim_tables as _scim_tables  # noqa: F401
