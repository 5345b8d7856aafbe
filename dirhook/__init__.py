"""dirhook: directory sync delivered as signed webhooks, orchestrated by Temporal."""

__version__ = "0.1.0"
