"""GrowArray: appends, row extends, and the room a load keeps."""
import numpy as np

from retrieval.grow import GrowArray


def test_appends_and_extends_keep_every_value_across_growth():
    a = GrowArray(np.int64, capacity=2)
    for i in range(5):
        a.append(i)
    a.extend(np.arange(5, 9))
    assert a.view.tolist() == list(range(9)) and a.capacity >= 9
    m = GrowArray(np.float32, capacity=1, width=3)
    m.extend(np.ones((4, 3), np.float32))
    assert m.view.shape == (4, 3) and m.view.flags.c_contiguous


def test_a_load_keeps_as_much_room_again_with_the_made_capacity_as_its_floor():
    small = GrowArray(np.int64, capacity=4)
    small.load(np.array([3, 7]))
    assert small.view.tolist() == [3, 7] and small.capacity == 4  # not 1,024: one per scope value
    big = GrowArray(np.int64, capacity=4)
    big.load(np.arange(3000))
    assert big.capacity == 6000
    default = GrowArray(np.int32)
    default.load(np.array([1], np.int32))
    assert default.capacity == 1024
