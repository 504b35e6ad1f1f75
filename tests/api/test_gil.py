"""A bulk ingest shortens the GIL switch interval while it runs (api/gil.py) and puts it back."""
import sys
import threading

import pytest

from api.gil import INGEST_SWITCH_S, quick_gil_handoff


@pytest.fixture(autouse=True)
def default_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_the_interval_is_short_inside_and_restored_after():
    with quick_gil_handoff():
        assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_S, abs=2e-6)
    assert sys.getswitchinterval() == pytest.approx(0.005, abs=2e-6)


def test_overlapping_holders_restore_only_when_the_last_leaves():
    inside, leave = threading.Event(), threading.Event()

    def ingest():
        with quick_gil_handoff():
            inside.set()
            leave.wait(10)

    other = threading.Thread(target=ingest)
    other.start()
    inside.wait(10)
    with quick_gil_handoff():
        pass
    assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_S, abs=2e-6)  # the other ingest still runs
    leave.set()
    other.join()
    assert sys.getswitchinterval() == pytest.approx(0.005, abs=2e-6)


def test_an_interval_set_shorter_already_is_kept():
    sys.setswitchinterval(0.0001)
    with quick_gil_handoff():
        assert sys.getswitchinterval() == pytest.approx(0.0001, abs=2e-6)
    assert sys.getswitchinterval() == pytest.approx(0.0001, abs=2e-6)


def test_an_error_inside_still_restores():
    with pytest.raises(RuntimeError), quick_gil_handoff():
        raise RuntimeError("boom")
    assert sys.getswitchinterval() == pytest.approx(0.005, abs=2e-6)
