"""The per-directory writer lock on SQLite (flock): excludes threads and processes, gives up
after its budget with DirectoryBusy, and is released when its holder dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dirhook.directory_lock import DirectoryBusy, DirectoryLocks


def test_a_second_writer_waits_then_gives_up_and_gets_it_once_free(tmp_path):
    locks = DirectoryLocks(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with locks.hold("dir_a", 1, "test"):
        with pytest.raises(DirectoryBusy) as busy, locks.hold("dir_a", 0.2, "test"):
            pass
        assert busy.value.retry_after == 1 and "dir_a is busy" in str(busy.value)
        with locks.hold("dir_b", 0.2, "test"):  # another directory is not held
            pass
    with locks.hold("dir_a", 0.2, "test") as waited:
        assert waited < 0.2


def test_another_process_holding_it_excludes_this_one_until_it_dies(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from dirhook.directory_lock import DirectoryLocks
        with DirectoryLocks({url!r}).hold("dir_p", 5, "test"):
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        locks = DirectoryLocks(url)
        with pytest.raises(DirectoryBusy), locks.hold("dir_p", 0.3, "test"):
            pass
        holder.kill()  # a writer that dies holding it: the kernel releases it
        holder.wait(10)
        with locks.hold("dir_p", 5, "test"):
            pass
    finally:
        holder.kill()
        holder.wait(10)


def test_waiting_without_a_budget_calls_back_between_tries(tmp_path):
    import threading

    locks = DirectoryLocks(f"sqlite:///{tmp_path / 'db.sqlite'}")
    calls = []
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.hold("dir_w", 1, "test"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    with locks.hold("dir_w", None, "test", waiting=lambda: calls.append(1)) as waited:
        assert waited >= 0.25 and calls  # heartbeats while it waited
    t.join(10)
