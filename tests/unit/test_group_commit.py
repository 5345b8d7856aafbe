"""Group commit of a directory's SCIM creations (dirhook/scim/group_commit.py): parallel
writes are committed together in arrival order under the directory's lock, each writer
gets its own answer, and the lock is free once nobody writes — whatever fails."""

from __future__ import annotations

import asyncio

import pytest

from dirhook.directory_lock import DirectoryBusy, DirectoryLocks
from dirhook.scim.group_commit import GroupCommit

WAIT = 5.0  # every await below is bounded by it


async def until(condition) -> None:
    """Wait, within WAIT, for a condition the code under test reaches on its own."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT)


class Recorder:
    """commit_group that records its groups and whether the directory was held meanwhile."""

    def __init__(self, locks: DirectoryLocks, directory_id: str):
        self.locks, self.directory_id = locks, directory_id
        self.groups: list[list[str]] = []
        self.held_elsewhere: list[bool] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = False

    def free(self) -> bool:
        try:
            with self.locks.hold(self.directory_id, 0, "test"):
                return True
        except DirectoryBusy:
            return False

    async def __call__(self, items: list[str]) -> list[str | Exception]:
        self.groups.append(list(items))
        self.held_elsewhere.append(not await asyncio.to_thread(self.free))
        await asyncio.wait_for(self.release.wait(), WAIT)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the database went away")
        return [ValueError(f"{item} is taken") if item.startswith("dup") else item.upper() for item in items]


@pytest.fixture
def locks(tmp_path):
    return DirectoryLocks(f"sqlite:///{tmp_path / 'db.sqlite'}")


async def test_parallel_writes_are_committed_together_in_order_each_with_its_answer(locks):
    recorder = Recorder(locks, "dir_g")
    commits = GroupCommit("dir_g", locks, WAIT, recorder)
    recorder.release.clear()  # the first write's commit waits while the others queue
    first = asyncio.ensure_future(commits.submit("a"))
    await until(lambda: recorder.groups)
    rest = [asyncio.ensure_future(commits.submit(x)) for x in ("b", "dup-c", "d")]
    await until(lambda: len(commits._group) == 3)  # queued behind the commit in progress
    recorder.release.set()
    answers = await asyncio.wait_for(asyncio.gather(first, *rest, return_exceptions=True), WAIT)
    assert answers[0] == "A" and answers[1] == "B" and answers[3] == "D"
    assert isinstance(answers[2], ValueError) and "dup-c is taken" in str(answers[2])
    assert recorder.groups == [["a"], ["b", "dup-c", "d"]]  # one commit for the three queued
    assert all(recorder.held_elsewhere), "a commit ran without the directory's lock"
    assert await asyncio.to_thread(recorder.free), "the lock stayed held with nobody writing"


async def test_a_failed_commit_answers_each_writer_of_its_group_and_the_next_one_works(locks):
    recorder = Recorder(locks, "dir_f")
    commits = GroupCommit("dir_f", locks, WAIT, recorder)
    recorder.fail_next = True
    answers = await asyncio.wait_for(
        asyncio.gather(*(commits.submit(x) for x in ("a", "b")), return_exceptions=True), WAIT
    )
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert await asyncio.wait_for(commits.submit("c"), WAIT) == "C"
    assert await asyncio.to_thread(recorder.free)


async def test_a_cancelled_writer_leaves_the_others_answered_and_the_lock_free(locks):
    recorder = Recorder(locks, "dir_c")
    commits = GroupCommit("dir_c", locks, WAIT, recorder)
    recorder.release.clear()
    gone = asyncio.ensure_future(commits.submit("a"))
    await until(lambda: recorder.groups)
    other = asyncio.ensure_future(commits.submit("b"))
    gone.cancel()  # its client hung up while its group committed
    recorder.release.set()
    assert await asyncio.wait_for(other, WAIT) == "B"
    assert recorder.groups == [["a"], ["b"]]  # its write stands
    assert await asyncio.to_thread(recorder.free)


async def test_a_write_inside_a_turn_commits_at_once(locks):
    recorder = Recorder(locks, "dir_t")
    commits = GroupCommit("dir_t", locks, WAIT, recorder)
    async with commits.turn():  # a PUT's read-modify-write: waiting for a leader would never end
        assert await asyncio.wait_for(commits.submit("a"), WAIT) == "A"
        with pytest.raises(ValueError):
            await asyncio.wait_for(commits.submit("dup"), WAIT)
    assert await asyncio.to_thread(recorder.free)


async def test_turns_run_one_at_a_time_in_arrival_order(locks):
    recorder = Recorder(locks, "dir_o")
    commits = GroupCommit("dir_o", locks, WAIT, recorder)
    inside: list[int] = []
    order: list[int] = []

    async def writer(n: int) -> None:
        async with commits.turn():
            inside.append(n)
            assert len(inside) == 1, "two turns at once"
            order.append(n)
            await asyncio.sleep(0.01)
            inside.remove(n)

    await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(6))), WAIT)
    assert order == list(range(6))
    assert await asyncio.to_thread(recorder.free)


async def test_a_directory_held_elsewhere_answers_busy_and_holds_nothing(locks, tmp_path):
    recorder = Recorder(locks, "dir_b")
    commits = GroupCommit("dir_b", locks, 0.3, recorder)
    other = DirectoryLocks(f"sqlite:///{tmp_path / 'db.sqlite'}")  # a pass in another process
    with other.hold("dir_b", 1, "test"):
        answers = await asyncio.wait_for(
            asyncio.gather(*(commits.submit(x) for x in ("a", "b")), return_exceptions=True), WAIT
        )
    assert all(isinstance(a, DirectoryBusy) for a in answers) and recorder.groups == []
    assert await asyncio.wait_for(commits.submit("c"), WAIT) == "C"
    assert await asyncio.to_thread(recorder.free)
