import itertools

import numpy
import pytest
import torch

from spacy_clinie.ml.crf import CRF, NEG, bio_constraints
from spacy_clinie.ml.optimizers import create_adamax
from spacy_clinie.ml.windows import make_windows

TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


@pytest.fixture
def crf():
    torch.manual_seed(0)
    crf = CRF(TAGS)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    return crf


def _brute(crf, em, length):
    tr, st = crf._trans(), crf._start()
    seqs = list(itertools.product(range(len(TAGS)), repeat=length))
    scores = []
    for s in seqs:
        v = st[s[0]] + em[0, s[0]]
        for t in range(1, length):
            v = v + tr[s[t - 1], s[t]] + em[t, s[t]]
        scores.append(v + crf.end[s[length - 1]])
    return seqs, torch.stack(scores)


def test_partition_viterbi_marginals_match_brute_force(crf):
    em = torch.randn(2, 4, len(TAGS))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]).bool()
    for b in range(2):
        length = int(mask[b].sum())
        seqs, scores = _brute(crf, em[b], length)
        logz = torch.logsumexp(scores, 0)
        assert crf._log_partition(em[b : b + 1], mask[b : b + 1])[0].item() == pytest.approx(logz.item(), abs=1e-4)
        best = list(seqs[int(scores.argmax())])
        assert crf.decode(em[b : b + 1], mask[b : b + 1])[0] == best
        gold = torch.tensor([best + [0] * (4 - length)])
        assert crf.nll(em[b : b + 1], gold, mask[b : b + 1]).item() == pytest.approx((logz - scores.max()).item(), abs=1e-4)
        p = torch.softmax(scores, 0)
        marg = torch.zeros(length, len(TAGS))
        for s, pp in zip(seqs, p):
            for t in range(length):
                marg[t, s[t]] += pp
        assert torch.allclose(crf.marginals(em[b : b + 1], mask[b : b + 1])[0, :length], marg, atol=1e-5)


def test_bio_constraints_forbid_invalid_transitions(crf):
    c = bio_constraints(TAGS)
    assert c[0, TAGS.index("I-A")] == NEG  # O -> I-A
    assert c[TAGS.index("B-B"), TAGS.index("I-A")] == NEG
    assert c[TAGS.index("B-A"), TAGS.index("I-A")] == 0
    assert c[len(TAGS), TAGS.index("I-B")] == NEG  # start with I-B
    em = torch.zeros(1, 3, len(TAGS))
    em[0, :, TAGS.index("I-A")] = 5.0  # emissions push for I-A everywhere
    path = [TAGS[i] for i in crf.decode(em, torch.ones(1, 3).bool())[0]]
    assert path[0] != "I-A"
    assert all(not (a == "O" and b.startswith("I-")) for a, b in zip(path, path[1:]))


def test_empty_rows_are_ignored(crf):
    em = torch.randn(2, 3, len(TAGS))
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]]).bool()
    assert crf.decode(em, mask)[1] == []
    assert torch.isfinite(crf.nll(em, torch.zeros(2, 3, dtype=torch.long), mask))


def test_windows_cover_every_word_once():
    pieces = [[1] * (i % 3 + 1) if i % 7 else [] for i in range(300)]  # some whitespace tokens
    windows = make_windows(pieces, 0, budget=40, stride=25)
    assert len(windows) > 5
    covered = [w.words[j] for w in windows for j in range(*w.core)]
    assert covered == [i for i, p in enumerate(pieces) if p]
    for w in windows:
        assert sum(len(pieces[i]) for i in w.words) <= 40


def test_windows_long_word_is_truncated_not_dropped():
    pieces = [[1] * 100, [1], [1]]
    windows = make_windows(pieces, 0, budget=10, stride=5)
    assert [w.words[j] for w in windows for j in range(*w.core)] == [0, 1, 2]


def test_adamax_matches_torch():
    w = numpy.array([1.0, -2.0, 3.0], dtype="float32")
    p = torch.nn.Parameter(torch.tensor(w.copy()))
    opt = create_adamax(0.01, L2=0.0, grad_clip=0.0)
    topt = torch.optim.Adamax([p], lr=0.01)
    for i in range(5):
        g = numpy.array([0.5, -1.0, 2.0 * (i + 1)], dtype="float32")
        w, _ = opt((0, "w"), w, g.copy())
        p.grad = torch.tensor(g)
        topt.step()
    assert numpy.allclose(w, p.detach().numpy(), atol=1e-6)


def test_window_starting_inside_a_mention_gets_a_valid_gold_sequence():
    """Regression: an I- tag at a window start made the CRF loss ~1e4."""
    from spacy_clinie.ml.windows import collate

    class Tok:
        cls_token_id, sep_token_id, pad_token_id = 101, 102, 0

    class Module:
        tokenizer = Tok()
        tasks = ["concepts"]
        tag_names = {"concepts": ["O", "B-A", "I-A"]}

    pieces = [[[5], [6], [7], [8]]]
    gold = [{"concepts": [1, 2, 2, 0]}]
    windows = make_windows(pieces[0], 0, budget=2, stride=1)
    batch = collate(Module(), pieces, windows, 2, gold, torch.device("cpu"))
    tags = Module.tag_names["concepts"]
    first = [tags[int(row[0])] for row in batch["gold"]["concepts"]]
    assert "I-A" not in first and first[1] == "B-A"
    crf = CRF(tags)
    em = torch.zeros(len(windows), batch["word_mask"].shape[1], 3)
    assert crf.nll(em, batch["gold"]["concepts"].clamp(min=0), batch["word_mask"]).item() < 100
