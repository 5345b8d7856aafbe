"""A faster reading of LDAP search results for ldap3's synchronous connections.

ldap3 turns every SearchResultEntry into nested tuples with a generic BER walker, then
builds three dictionaries of it (raw, "checked" and case-insensitive): measured with
bench/ldap_full_sync.py, that is most of a full pass's read and ~80 % of ldap3's own
paged read. dirhook only wants the DN and the raw values, so entries are decoded here in
one pass over the message; every other message (results, referrals, intermediate
responses, entries with controls such as syncrepl's state) still goes through ldap3.

This is hand-written rather than another BER library because it is the one message shape
that matters and a generic decoder is what costs the time (pyasn1 is slower than ldap3's
own walker). It relies on two ldap3 internals, kept in one place: the synchronous
strategy's ``receiving()`` (which hands back whole raw messages) and ``_get_response()``.
"""

from __future__ import annotations

from typing import Any

from ldap3.strategy.sync import SyncStrategy

from dirhook.sync.unchanged import wire_hash

SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed


class WireError(ValueError):
    """A message that is not well-formed BER: left to ldap3, which reports it its own way."""


def _length(buf: bytes, i: int) -> tuple[int, int]:
    """The definite length at ``buf[i]``: (length, index of the first content octet)."""
    first = buf[i]
    if first < 0x80:
        return first, i + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise WireError("indefinite or oversized BER length")
    return int.from_bytes(buf[i + 1 : i + 1 + n], "big"), i + 1 + n


def _expect(buf: bytes, i: int, tag: int, end: int) -> tuple[int, int]:
    """Checks the tag at ``i``; returns (start, stop) of its content, within ``end``."""
    if i >= end or buf[i] != tag:
        raise WireError(f"expected tag {tag:#x} at {i}")
    length, start = _length(buf, i + 1)
    stop = start + length
    if stop > end:
        raise WireError("BER value runs past its container")
    return start, stop


def decode_search_entry(
    message: bytes, message_id: int, record_key: bytes | None = None, known: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The entry as ldap3's responses spell it (``type``, ``dn``, ``raw_dn``,
    ``raw_attributes``), if ``message`` is a SearchResultEntry without controls answering
    ``message_id``; otherwise None (ldap3 decodes it).

    With a ``record_key``, the entry's bytes (DN and attributes, as sent) are hashed first
    (``record_hash``, dirhook.sync.unchanged.wire_hash); an entry whose hash is ``known``
    is not decoded at all (``unchanged``, no DN nor attributes)."""
    try:
        start, end = _expect(message, 0, 0x30, len(message))  # LDAPMessage
        id_start, id_stop = _expect(message, start, 0x02, end)  # messageID
        if int.from_bytes(message[id_start:id_stop], "big", signed=True) != message_id:
            return None
        if id_stop >= end or message[id_stop] != SEARCH_RESULT_ENTRY:
            return None
        op_start, op_stop = _expect(message, id_stop, SEARCH_RESULT_ENTRY, end)
        if op_stop != end:
            return None  # controls follow the entry: ldap3 decodes them
        digest = None
        if record_key is not None:
            digest = wire_hash(record_key, memoryview(message)[op_start:op_stop])
            if digest in known:
                return {
                    "type": "searchResEntry",
                    "dn": "",
                    "raw_dn": b"",
                    "raw_attributes": {},
                    "attributes": {},
                    "record_hash": digest,
                    "unchanged": True,
                }
        dn_start, dn_stop = _expect(message, op_start, 0x04, op_stop)
        raw_dn = message[dn_start:dn_stop]
        attributes: dict[str, list[bytes]] = {}
        i, list_stop = _expect(message, dn_stop, 0x30, op_stop)  # PartialAttributeList
        # The loops below read short-form lengths inline (nearly every attribute and value)
        # and call _length only for long ones: this loop is the whole read's hot spot.
        while i < list_stop:
            if message[i] != 0x30:  # PartialAttribute
                raise WireError("attribute is not a SEQUENCE")
            length = message[i + 1]
            if length < 0x80:
                a_stop = i + 2 + length
                i += 2
            else:
                length, i = _length(message, i + 1)
                a_stop = i + length
            if message[i] != 0x04:  # type
                raise WireError("attribute type is not an OCTET STRING")
            length = message[i + 1]
            if length < 0x80:
                name = message[i + 2 : i + 2 + length]
                i += 2 + length
            else:
                length, i = _length(message, i + 1)
                name = message[i : i + length]
                i += length
            v, vals_stop = _expect(message, i, 0x31, a_stop)  # SET OF value
            values = []
            while v < vals_stop:
                if message[v] != 0x04:
                    raise WireError("attribute value is not an OCTET STRING")
                length = message[v + 1]
                if length < 0x80:
                    v += 2
                else:
                    length, v = _length(message, v + 1)
                values.append(message[v : v + length])
                v += length
            if v != vals_stop or vals_stop != a_stop or a_stop > list_stop:
                raise WireError("attribute runs past its container")
            attributes[name.decode("utf-8")] = values
            i = a_stop
    except (WireError, IndexError, UnicodeDecodeError):
        return None
    dn = raw_dn.decode("utf-8", errors="replace")
    # ``attributes`` is ldap3's formatted view; dirhook reads raw values only, and ldap3's
    # own code that may look at ``attributes`` finds the same names.
    return {
        "type": "searchResEntry",
        "dn": dn,
        "raw_dn": raw_dn,
        "raw_attributes": attributes,
        "attributes": attributes,
        "record_hash": digest,
    }


class FastEntryStrategy(SyncStrategy):
    """ldap3's synchronous strategy, with plain search entries decoded by ``decode_search_entry``.

    ``receiving()`` decodes the entries answering the request being awaited and hands
    ldap3 an empty message in their place (which it skips); ``_get_response()`` puts them
    back before the final result, in the order they arrived."""

    _awaited: int | None = None
    _entries: list[dict[str, Any]]
    # Set by a full pass's reader (recognize_records): entries are hashed, the known ones
    # not decoded.
    record_key: bytes | None = None
    known: frozenset[str] = frozenset()

    def _get_response(self, message_id: int, timeout: float | None) -> Any:
        self._awaited, self._entries = message_id, []
        try:
            responses = super()._get_response(message_id, timeout)
        finally:
            self._awaited = None
        if isinstance(responses, list) and self._entries:
            return self._entries + responses
        return responses

    def receiving(self) -> list[bytes]:
        messages: list[bytes] = super().receiving()
        if self._awaited is not None:
            for n, raw in enumerate(messages):
                entry = decode_search_entry(raw, self._awaited, self.record_key, self.known) if raw else None
                if entry is not None:
                    self._entries.append(entry)
                    messages[n] = b""
        return messages


def recognize_records(connection: Any, record_key: bytes, known: frozenset[str]) -> None:
    """Hash the entries this connection reads with ``record_key``; leave ``known`` ones undecoded."""
    if isinstance(connection.strategy, FastEntryStrategy):
        connection.strategy.record_key, connection.strategy.known = record_key, known


def use_fast_entries(connection: Any) -> None:
    """Switch a synchronous ldap3 connection to ``FastEntryStrategy`` (before it opens)."""
    if type(connection.strategy) is not SyncStrategy:
        return  # another strategy (async, mock…): leave it as ldap3 made it
    connection.strategy.__class__ = FastEntryStrategy
