"""A full pass's users, read and normalized in a second process while the engine commits.

Reading (the socket and BER decoding) and normalizing are pure Python, as is the engine's
work, so a thread would only take turns with it under the GIL (measured: slower). A child
process takes them to the machine's other core (bench/ldap_full_sync.py).

The child is a fresh interpreter (``python -m dirhook.providers.ldap.reader``), not a fork
of the worker: forking a process with threads (Temporal's, asyncio's) can copy a lock held
by another thread, and multiprocessing's spawn and forkserver re-run the parent's main
script in every child. It starts when the pass starts, so its ~0.4 s start-up overlaps
the groups' read. It opens its own LDAP connection (paged-results cookies belong to a
connection), gets its settings on stdin (the bind password never shows in its arguments
or environment) and sends pages of ``(dn, normalized user as JSON, stored record)`` on
stdout, which blocks it when the engine falls behind, so memory stays flat; then its newest
modifyTimestamp. Before it searches, it waits for the hashes of the stored users
(``known_records``): an entry whose bytes hash to one of them is sent by its hash alone,
neither decoded nor normalized (dirhook.sync.unchanged). Errors come back as the same
``SourceError`` kinds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dirhook.errors import (
    DirhookError,
    MappingError,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
)
from dirhook.providers.base import SourceEntry

# The errors the child reports by name, raised again as themselves here.
_ERRORS: dict[str, type[DirhookError]] = {
    cls.__name__: cls for cls in (SourceUnavailable, SourceAuthError, SourceConfigError, MappingError)
}
PAGE = 500


def _child(
    conn: Connection,
    records: Callable[[], tuple[bytes | None, list[str]]],
    config: dict[str, Any],
    password: str | None,
    overrides: dict[str, Any] | None,
    base: str,
    ldap_filter: str,
    attributes: list[str],
) -> None:
    from dirhook.normalize import effective_mapping, normalize_user, reference_key, source_record
    from dirhook.providers.ldap.config import LdapConfig
    from dirhook.providers.ldap.connection import open_connection
    from dirhook.providers.ldap.polling import entries
    from dirhook.providers.ldap.wire import recognize_records

    ldap = None
    try:
        cfg = LdapConfig.model_validate(config)
        ldap = open_connection(cfg, password)
        mapping = effective_mapping(cfg.flavour, overrides)["user"]
        record_key, known = records()
        if record_key is not None:
            recognize_records(ldap, record_key, frozenset(known))
        cursor: dict[str, Any] = {}
        page: list[tuple[str | None, dict[str, Any] | None, dict[str, Any] | None, str | None]] = []
        for entry in entries(ldap, cfg, base, ldap_filter, attributes, cursor):
            if entry.unchanged:  # stored as read: its hash is all the engine needs
                page.append((None, None, None, entry.record_hash))
            else:
                record = source_record(entry.attributes)
                user = normalize_user(mapping, record, reference_key(entry.ref))
                page.append((entry.ref, user.model_dump(mode="json"), record, entry.record_hash))
            if len(page) >= PAGE:
                conn.send(("page", page))
                page = []
        if page:
            conn.send(("page", page))
        conn.send(("done", cursor.get("modify_timestamp", "")))
    except DirhookError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except BrokenPipeError:
        pass  # the engine stopped reading (its pass failed or was cancelled)
    except Exception as exc:
        conn.send(("error", "SourceUnavailable", f"the LDAP reader failed: {type(exc).__name__}: {exc}"))
    finally:
        if ldap is not None:
            ldap.unbind()
        conn.close()


def _main() -> None:
    """The child: settings from stdin, messages to stdout (both multiprocessing connections)."""
    stdin, stdout = Connection(os.dup(0), writable=False), Connection(os.dup(1), readable=False)
    # The settings first; the stored records' hashes once the engine reaches the users
    # (UserReader.known_records), read after the connection is open.
    _child(stdout, stdin.recv, *stdin.recv())


class UserReader:
    """The child process reading one full pass's users; iterate it once."""

    def __init__(
        self,
        config: dict[str, Any],
        password: str | None,
        overrides: dict[str, Any] | None,
        base: str,
        ldap_filter: str,
        attributes: list[str],
        cursor: dict[str, Any],
        timeout_seconds: float,
    ):
        package_root = str(Path(__file__).resolve().parents[3])
        # dirhook's own settings (admin token, encryption keys…) are none of the reader's
        # business; the rest (TLS trust, proxies, locale) it may need.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIRHOOK_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self.cursor = cursor
        self.timeout_seconds = timeout_seconds
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dirhook.providers.ldap.reader"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            raise SourceUnavailable(f"could not start the LDAP reader process: {exc}") from None
        # Connections on duplicates: they close their descriptor, as Popen closes its own.
        assert self.process.stdout is not None and self.process.stdin is not None  # both PIPE
        self._messages = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdout.close()
        self._sending: threading.Thread | None = None
        self._settings: Connection | None = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.process.stdin.close()
        self._settings.send((config, password, overrides, base, ldap_filter, attributes))

    def known_records(self, record_key: bytes | None, hashes: Collection[str]) -> None:
        """Changes.known_records: the child hashes each entry with ``record_key`` and sends
        those among ``hashes`` by their hash alone, undecoded. Once, before iterating.
        Sent from a thread: the child reads them once it has started (~0.4 s of imports),
        and the engine reads the groups meanwhile."""
        if self._settings is None:
            return
        settings, self._settings = self._settings, None
        message = (record_key, list(hashes))

        def send() -> None:
            try:
                settings.send(message)
            except OSError:
                pass  # the child ended: the error it reports on stdout is read next
            finally:
                settings.close()

        self._sending = threading.Thread(target=send, name="ldap-reader-settings", daemon=True)
        self._sending.start()

    def __iter__(self) -> Iterator[SourceEntry]:
        self.known_records(None, ())  # the child waits for them: none, if nobody gave any
        try:
            while True:
                # A page takes one LDAP round trip: a child silent for the whole LDAP
                # timeout is a hung one.
                if not self._messages.poll(self.timeout_seconds):
                    raise SourceUnavailable(f"the LDAP reader sent nothing for {self.timeout_seconds:.0f} s")
                try:
                    message = self._messages.recv()
                except EOFError:
                    raise SourceUnavailable(
                        f"the LDAP reader ended unexpectedly (exit code {self.process.poll()})"
                    ) from None
                if message[0] == "page":
                    for ref, attributes_json, record, record_hash in message[1]:
                        if ref is None:
                            yield SourceEntry(ref="", attributes={}, record_hash=record_hash, unchanged=True)
                        else:
                            yield SourceEntry(
                                ref=ref, attributes=record, prepared=attributes_json, record_hash=record_hash
                            )
                elif message[0] == "done":
                    if message[1] > self.cursor.get("modify_timestamp", ""):
                        self.cursor["modify_timestamp"] = message[1]
                    return
                else:
                    _kind, name, text = message
                    raise _ERRORS.get(name, SourceUnavailable)(text)
        finally:
            self.close()

    def close(self) -> None:
        """Stops the child (a pass that failed or finished early leaves it reading)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self._settings is not None:
            self._settings.close()
            self._settings = None
        if self._sending is not None:  # the child is gone: its pipe refuses the rest at once
            self._sending.join(timeout=10)
        self._messages.close()


if __name__ == "__main__":
    _main()
