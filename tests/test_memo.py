"""BoundedMemo: a value put is got back until the memo is full, then everything is forgotten."""

from corral.memo import BoundedMemo


def test_a_full_memo_forgets_everything_and_keeps_the_new_value():
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    assert memo.put("a", 1) == 1 and memo.put("b", 2) == 2
    assert (memo.get("a"), memo.get("b")) == (1, 2)
    memo.put("c", 3)  # full: a and b go
    assert dict(memo) == {"c": 3}
