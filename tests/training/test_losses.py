"""MWER loss and weighted word errors on tiny hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import mwer_loss, weighted_word_errors


def _loss_and_grad(log_probs, errors, valid=None):
    log_probs = torch.tensor(log_probs, dtype=torch.float64, requires_grad=True)
    errors = torch.tensor(errors, dtype=torch.float64)
    valid = torch.ones_like(errors, dtype=torch.bool) if valid is None else torch.tensor(valid)
    loss = mwer_loss(log_probs, errors, valid)
    loss.backward()
    return loss.item(), log_probs.grad


def test_one_row_of_two_by_hand():
    # P = (0.75, 0.25) whatever the common offset; mean error 2: 0.75·(1−2) + 0.25·(3−2) = −0.5
    loss, grad = _loss_and_grad([[math.log(3) - 5, -5.0]], [[1.0, 3.0]])
    assert loss == pytest.approx(-0.5)
    # d/d logp_i = P_i·(err_i − E[err]), E[err] = 1.5
    assert grad[0].tolist() == pytest.approx([0.75 * (1 - 1.5), 0.25 * (3 - 1.5)])


def test_two_rows_of_three_by_hand_with_padding():
    log_probs = [[math.log(2), 0.0, 0.0], [0.0, math.log(4), 99.0]]
    errors = [[0.0, 2.0, 4.0], [3.0, 1.0, 100.0]]
    valid = [[True, True, True], [True, True, False]]
    loss, grad = _loss_and_grad(log_probs, errors, valid)
    # row 0: P = (.5, .25, .25), mean 2 -> −0.5; row 1: P = (.2, .8), mean 2 -> −0.6; the padded entry is ignored
    assert loss == pytest.approx((-0.5 - 0.6) / 2)
    expected_row1 = [0.2 * (3 - 1.4) / 2, 0.8 * (1 - 1.4) / 2, 0.0]
    assert grad[1].tolist() == pytest.approx(expected_row1)


def test_the_best_hypothesis_is_pushed_up():
    loss, grad = _loss_and_grad([[-1.0, -2.0, -0.5, -3.0]], [[2.0, 0.0, 3.0, 1.0]])
    # gradient descent raises log p where the gradient is negative
    assert grad[0, 1] < 0 and grad[0, 2] > 0
    assert grad[0].argmin() == 1


def test_a_constant_added_to_a_rows_errors_changes_nothing():
    log_probs = [[-1.0, -2.0, -0.5], [0.3, -0.7, -0.1]]
    errors = torch.tensor([[2.0, 0.0, 3.0], [1.0, 4.0, 0.0]])
    loss, grad = _loss_and_grad(log_probs, errors.tolist())
    shifted = errors + torch.tensor([[7.0], [-0.5]])
    loss_shifted, grad_shifted = _loss_and_grad(log_probs, shifted.tolist())
    assert loss_shifted == pytest.approx(loss)
    assert torch.allclose(grad_shifted, grad)


def test_rows_with_one_valid_hypothesis_give_no_loss_and_no_gradient():
    loss, grad = _loss_and_grad([[-1.0, -2.0], [-0.5, -0.1]], [[1.0, 5.0], [3.0, 0.0]], [[True, False], [False, False]])
    assert loss == 0.0
    assert torch.count_nonzero(grad) == 0 and torch.isfinite(grad).all()
    # one informative row next to an empty one: the batch mean counts both rows
    loss, grad = _loss_and_grad([[math.log(3), 0.0], [-0.5, -0.1]], [[1.0, 3.0], [3.0, 0.0]], [[True, True], [True, False]])
    assert loss == pytest.approx(-0.5 / 2)
    assert grad[1].tolist() == [0.0, 0.0]


def test_mwer_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share one"):
        mwer_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3, dtype=torch.bool))


def test_weighted_errors_weigh_hotword_substitutions_and_deletions():
    ref = "Our next speaker is Dr. Priya Raghunathan from Zanzibar."
    hotwords = ["priya raghunathan", "ZANZIBAR"]
    assert weighted_word_errors(ref, ref, hotwords, 5.0) == 0.0
    # substitution of a word of a multi-word hotword
    assert weighted_word_errors(ref, "our next speaker is doctor maria raghunathan from zanzibar", hotwords, 5.0) == 5.0
    # deletion of a single-word hotword (case and punctuation do not matter)
    assert weighted_word_errors(ref, "our next speaker is doctor priya raghunathan from", hotwords, 5.0) == 5.0
    # a substitution and a deletion of ordinary words count 1 each
    assert weighted_word_errors(ref, "our last speaker doctor priya raghunathan from zanzibar", hotwords, 5.0) == 2.0
    # an insertion touches no reference word: 1, even next to a hotword
    assert weighted_word_errors(ref, "our next speaker is doctor priya raghunathan from zanzibar today", hotwords, 5.0) == 1.0
    # with weight 1 it is the plain word error count
    assert weighted_word_errors(ref, "our speaker is doctor maria from zanzibar", hotwords, 1.0) == 3.0


def test_weighted_errors_need_the_whole_multi_word_hotword():
    # "priya" alone is not an occurrence of the hotword "priya raghunathan"
    assert weighted_word_errors("priya said hello", "maria said hello", ["Priya Raghunathan"], 5.0) == 1.0
    assert weighted_word_errors("", "hello", ["x"], 5.0) == 1.0  # empty reference: insertions only
    assert weighted_word_errors("hello there", "", [], 2.0) == 2.0
    with pytest.raises(ValueError, match="hotword_weight"):
        weighted_word_errors("a", "b", [], -1.0)
