"""One sync pass: normalize what a source reports, diff it against the stored state, and
commit the new state together with its events, chunk by chunk.

No Temporal and no network here: the activity hands in a ``Changes`` (streams from a
provider) and a sessionmaker. Every chunk is one transaction holding the state and the
events it produced, so a crash loses at most the chunk in flight and a re-run emits only
what was not committed. The cursor is committed last, with the deletions.

- ``engine``: ``SyncEngine``, the pass's phases in order;
- ``context``: the directory's groups, nesting and roles as the pure role code wants them;
- ``groups`` and ``users``: writing (and deleting) each kind, with its events;
- ``deletions``: deletion protection (hold what is over the threshold);
- ``result``: ``PassResult``, what a pass did.
"""

from dirhook.sync.engine import SyncEngine
from dirhook.sync.result import PassResult

__all__ = ["PassResult", "SyncEngine"]
