"""Webhook delivery: the HTTP attempt (``sender``), the rules that judge it (``rules``, pure),
rate pacing (``pacing``), the rows it reads and writes (``store``) and the sending engine
that the dispatcher's activity runs (``engine``)."""
