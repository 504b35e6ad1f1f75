from retrieval.supersession import current_first


def test_a_newer_note_goes_in_front_of_the_one_it_supersedes():
    assert current_first([3, 0, 2, 1], {0: [1]}, top_k=4) == [3, 1, 0, 2]


def test_a_newer_note_outside_the_top_k_enters_and_the_last_one_leaves():
    assert current_first([3, 0, 2], {0: [7]}, top_k=3) == [3, 7, 0]


def test_a_newer_note_already_in_front_stays_where_it_is():
    assert current_first([1, 3, 0], {0: [1]}, top_k=3) == [1, 3, 0]


def test_chains_put_the_newest_first():
    # 2 superseded 1, which had superseded 0.
    assert current_first([0, 5], {0: [1], 1: [2]}, top_k=4) == [2, 1, 0, 5]


def test_a_cycle_of_links_does_not_loop():
    assert current_first([0, 1, 4], {0: [1], 1: [0]}, top_k=3) == [1, 0, 4]


def test_without_links_the_order_is_kept_and_cut_at_top_k():
    assert current_first([4, 2, 9], {}, top_k=2) == [4, 2]
