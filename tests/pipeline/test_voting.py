"""Voting rules (spacy_clinie.pipeline.voting) on hand-made predictions."""
import pytest

from spacy_clinie.pipeline.voting import (
    Vote,
    default_min_votes,
    member_scores,
    resolve_overlaps,
    vote,
    vote_cats,
    vote_spans,
)

RASH = (2, 3, "ADR")
NAUSEA = (4, 5, "ADR")
HEADACHE = (6, 8, "ADR")
HEADACHE_SHORT = (7, 8, "ADR")


def test_strict_majority_is_the_default():
    assert [default_min_votes(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_hard_majority_of_three():
    members = [{RASH: 0.9, NAUSEA: 0.6}, {RASH: 0.2}, {NAUSEA: 0.99, HEADACHE: 1.0}]
    out = vote(members, "hard")
    # rash 2/3 and nausea 2/3 pass; headache 1/3 does not; confidence is ignored
    assert set(out) == {RASH, NAUSEA}
    assert out[RASH] == Vote(score=pytest.approx(2 / 3), votes=2, mean_confidence=pytest.approx(1.1 / 3))


def test_hard_tie_does_not_pass_and_min_votes_overrides():
    members = [{RASH: 1.0}, {RASH: 1.0}, {}, {}]
    assert vote(members, "hard") == {}  # 2 of 4 is a tie, not a majority
    assert set(vote(members, "hard", min_votes=2)) == {RASH}
    with pytest.raises(ValueError):
        vote(members, "hard", min_votes=5)
    with pytest.raises(ValueError):
        vote(members, "hard", min_votes=0)


def test_hard_ignores_weights():
    members = [{RASH: 1.0}, {}, {}]
    assert vote(members, "hard", weights=[10.0, 1.0, 1.0]) == {}


def test_soft_mean_with_missing_as_zero_and_threshold_inclusive():
    members = [{RASH: 0.9}, {RASH: 0.6}, {}]
    out = vote(members, "soft", threshold=0.5)
    assert out[RASH].score == pytest.approx(0.5)  # (0.9 + 0.6 + 0) / 3, accepted at >= 0.5
    assert out[RASH].votes == 2
    assert vote(members, "soft", threshold=0.51) == {}
    # one confident member alone is not enough
    assert vote([{NAUSEA: 1.0}, {}, {}], "soft") == {}


def test_weighted_soft():
    members = [{RASH: 0.8}, {}, {RASH: 0.2}]
    assert vote(members, "soft") == {}  # mean 1/3
    out = vote(members, "weighted_soft", weights=[3.0, 1.0, 1.0])
    assert out[RASH].score == pytest.approx((3 * 0.8 + 0.2) / 5)
    # weights are relative: scaling them changes nothing
    again = vote(members, "weighted_soft", weights=[0.3, 0.1, 0.1])
    assert again[RASH].score == pytest.approx(out[RASH].score)
    # a zero weight silences a member
    assert vote([{RASH: 1.0}, {}], "weighted_soft", weights=[0.0, 1.0]) == {}


@pytest.mark.parametrize("weights", [None, [1.0], [1.0, -1.0], [0.0, 0.0]])
def test_weighted_soft_needs_valid_weights(weights):
    with pytest.raises(ValueError):
        vote([{RASH: 1.0}, {}], "weighted_soft", weights=weights)


def test_empty_members():
    with pytest.raises(ValueError):
        vote([], "soft")
    with pytest.raises(ValueError):
        vote_cats([], ["ADE"])
    # members that predicted nothing: nothing is accepted
    assert vote([{}, {}, {}], "hard") == {}
    assert vote_spans([{}, {}], "soft") == []
    with pytest.raises(ValueError):
        vote([{}], "majority")


def test_member_scores_keeps_max_and_clips():
    assert member_scores([(RASH, 0.3), (RASH, 0.7), (NAUSEA, 1.5), (HEADACHE, -1)]) == {RASH: 0.7, NAUSEA: 1.0, HEADACHE: 0.0}


def test_overlaps_resolved_best_first():
    accepted = {
        HEADACHE: Vote(0.6, 2, 0.6),
        HEADACHE_SHORT: Vote(0.9, 3, 0.9),
        RASH: Vote(0.5, 2, 0.5),
    }
    assert set(resolve_overlaps(accepted)) == {HEADACHE_SHORT, RASH}
    # equal scores and votes: the longer span wins
    tie = {HEADACHE: Vote(0.6, 2, 0.6), HEADACHE_SHORT: Vote(0.6, 2, 0.6)}
    assert set(resolve_overlaps(tie)) == {HEADACHE}
    # same offsets, different labels overlap too
    labels = {(2, 3, "ADR"): Vote(0.7, 2, 0.7), (2, 3, "Severity"): Vote(0.8, 2, 0.8)}
    assert set(resolve_overlaps(labels)) == {(2, 3, "Severity")}


def test_vote_spans_sorted_and_overlaps_kept_on_request():
    members = [{HEADACHE: 0.9, RASH: 0.9}, {HEADACHE_SHORT: 0.9, RASH: 0.9}, {HEADACHE: 0.9, HEADACHE_SHORT: 0.9}]
    out = vote_spans(members, "soft", threshold=0.5)
    assert [k for k, _ in out] == [RASH, HEADACHE]  # headache (6, 8) and (7, 8) both at 0.6: longer kept
    both = vote_spans(members, "soft", threshold=0.5, overlaps=True)
    assert [k for k, _ in both] == [RASH, HEADACHE, HEADACHE_SHORT]


def test_exact_match_only():
    # different boundaries are different keys: no partial credit
    assert vote([{(1, 3, "ADR"): 1.0}, {(1, 2, "ADR"): 1.0}, {(1, 3, "Other"): 1.0}], "hard") == {}


LABELS = ["ADE", "NO_ADE"]


def test_cats_soft_and_weighted():
    members = [{"ADE": 0.9, "NO_ADE": 0.1}, {"ADE": 0.4, "NO_ADE": 0.6}, {"ADE": 0.2, "NO_ADE": 0.8}]
    soft = vote_cats(members, LABELS, "soft")
    assert soft["ADE"] == pytest.approx(0.5) and soft["NO_ADE"] == pytest.approx(0.5)
    weighted = vote_cats(members, LABELS, "weighted_soft", weights=[2.0, 1.0, 1.0])
    assert weighted["ADE"] == pytest.approx((1.8 + 0.4 + 0.2) / 4)
    # a member without a label counts 0 for it
    assert vote_cats([{"ADE": 1.0}, {"NO_ADE": 1.0}], LABELS, "soft") == {"ADE": 0.5, "NO_ADE": 0.5}


def test_cats_hard_exclusive_majority_and_ties():
    members = [{"ADE": 0.9, "NO_ADE": 0.1}, {"ADE": 0.6, "NO_ADE": 0.4}, {"ADE": 0.1, "NO_ADE": 0.9}]
    assert vote_cats(members, LABELS, "hard") == {"ADE": 1.0, "NO_ADE": 0.0}
    # 1 vote each: the higher mean probability wins (NO_ADE: (0.45 + 0.9) / 2)
    tie = [{"ADE": 0.55, "NO_ADE": 0.45}, {"ADE": 0.1, "NO_ADE": 0.9}]
    assert vote_cats(tie, LABELS, "hard") == {"ADE": 0.0, "NO_ADE": 1.0}
    # equal votes and equal means: label order decides
    even = [{"ADE": 0.6, "NO_ADE": 0.4}, {"ADE": 0.4, "NO_ADE": 0.6}]
    assert vote_cats(even, LABELS, "hard") == {"ADE": 1.0, "NO_ADE": 0.0}
    assert vote_cats(even, ["NO_ADE", "ADE"], "hard") == {"NO_ADE": 1.0, "ADE": 0.0}
    # a tie inside one member: first label in order
    assert vote_cats([{"ADE": 0.5, "NO_ADE": 0.5}], LABELS, "hard") == {"ADE": 1.0, "NO_ADE": 0.0}


def test_cats_hard_multilabel():
    labels = ["ADE", "SEVERE"]
    members = [{"ADE": 0.9, "SEVERE": 0.6}, {"ADE": 0.7, "SEVERE": 0.2}, {"ADE": 0.3, "SEVERE": 0.5}]
    assert vote_cats(members, labels, "hard", exclusive=False) == {"ADE": 1.0, "SEVERE": 1.0}
    assert vote_cats(members, labels, "hard", exclusive=False, min_votes=3) == {"ADE": 0.0, "SEVERE": 0.0}
    assert vote_cats(members, labels, "hard", exclusive=False, member_threshold=0.65) == {"ADE": 1.0, "SEVERE": 0.0}
