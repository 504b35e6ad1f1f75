"""The heap is frozen while someone needs it (api/heap.py): the first holder freezes, the last thaws."""
import gc
import threading

from api.heap import freeze_startup_objects, heap_frozen, refreeze, thaw_startup_objects


class Marker:
    """A tracked object whose presence among the collector's objects shows whether it is frozen."""


def _collected(obj) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_heap_frozen_freezes_for_its_block_and_thaws_after():
    marker = Marker()
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        assert gc.get_freeze_count() > 0
        assert not _collected(marker)
        made_inside = Marker()
        assert _collected(made_inside)  # what the block makes is collected as usual
    assert gc.get_freeze_count() == 0
    assert _collected(marker)


def test_nested_and_overlapping_holders_thaw_only_when_the_last_leaves():
    with heap_frozen():
        with heap_frozen():
            pass
        assert gc.get_freeze_count() > 0  # the outer holder still needs it
    assert gc.get_freeze_count() == 0

    inside, leave = threading.Event(), threading.Event()

    def ingest():
        with heap_frozen():
            inside.set()
            leave.wait(10)

    other = threading.Thread(target=ingest)
    other.start()
    inside.wait(10)
    with heap_frozen():
        pass
    assert gc.get_freeze_count() > 0  # the other thread's ingest is still running
    leave.set()
    other.join()
    assert gc.get_freeze_count() == 0


def test_an_ingest_inside_a_serving_process_leaves_the_servers_freeze_alone():
    marker = Marker()
    freeze_startup_objects()
    try:
        with heap_frozen():
            pass
        assert gc.get_freeze_count() > 0
        assert not _collected(marker)
    finally:
        thaw_startup_objects()
    assert gc.get_freeze_count() == 0
    thaw_startup_objects()  # one thaw too many changes nothing
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_someone_else_is_left_frozen():
    marker = Marker()
    gc.freeze()  # e.g. a pre-fork server's master process
    try:
        before = gc.get_freeze_count()
        with heap_frozen():
            made_inside = Marker()
        assert gc.get_freeze_count() == before
        assert not _collected(marker)
        assert _collected(made_inside)  # not frozen by us either
    finally:
        gc.unfreeze()


def test_refreeze_freezes_what_the_only_holder_made_since():
    with heap_frozen():
        made_inside = Marker()
        refreeze()
        assert not _collected(made_inside)  # a full pass would not walk it again
        made_after = Marker()
        assert _collected(made_after)
    assert gc.get_freeze_count() == 0
    assert _collected(made_inside)  # thawed with the rest


def test_refreeze_outside_a_freeze_or_beside_another_holder_freezes_nothing():
    refreeze()
    assert gc.get_freeze_count() == 0
    freeze_startup_objects()  # a server: request objects must stay collectable
    try:
        with heap_frozen():
            request_object = Marker()
            refreeze()
            assert _collected(request_object)
    finally:
        thaw_startup_objects()
    gc.freeze()  # someone else's freeze
    try:
        with heap_frozen():
            theirs = Marker()
            refreeze()
            assert _collected(theirs)
    finally:
        gc.unfreeze()
