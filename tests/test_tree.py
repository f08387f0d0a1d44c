"""sims.tree: arms that share their first steps trained once. The tree of a hand-made schedule table (expected cuts and
paths worked out by hand in the docstring), the char LM's tree against the plain sweep (records, finals, divergence),
and the rules of cuts and paths."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sims.char_lm import CharLMConfig, lr_table, sim, tree
from sims.sweep import sweep
from sims.tree import check_tree, tree_by_schedule


def test_tree_by_schedule_on_a_table_worked_by_hand():
    """n = 12, record grid 2. arm 0: lr 1 throughout (end 12); arm 1: arm 0's lrs up to step 7, then 0.5 (first
    difference at 8; end 8); arm 2: arm 0's up to 6, then 0.25 (difference at 7; end 12); arm 3: another lr from
    step 1 (end 4). Cuts: the ends 4, 8, 12 and the record steps at or before the differences, 8 and 6: (4, 6, 8, 12).
    [0, 4): arm 3 ends at 4, so runs must agree through step 4: {0, 1, 2} and {3}; [4, 6): agree before 6: {0, 1, 2};
    [6, 8): arm 1 ends at 8, so agree through 8: arm 1 (its lr at 8 differs) runs apart from arm 0, and arm 2 too
    (difference at 7); [8, 12): arms 0 and 2, arm 1 ended."""
    lr = np.ones((4, 13))
    lr[1, 8:] = 0.5
    lr[2, 7:] = 0.25
    lr[3, 1:] = 2.0
    cuts, paths = tree_by_schedule(lr, [12, 8, 12, 4], 2)
    assert cuts == (4, 6, 8, 12)
    assert paths == [(0, 0, 0, 0), (0, 0, 1, None), (0, 0, 2, 2), (3, None, None, None)]
    check_tree(cuts, paths, 4, np.arange(0, 13, 2))
    with pytest.raises(ValueError, match="ends"):
        tree_by_schedule(lr, [12, 8, 12, 5], 2)  # off the record grid
    with pytest.raises(ValueError, match="ends"):
        tree_by_schedule(lr, [10, 8, 10, 4], 2)  # nobody runs to n_steps


@pytest.mark.parametrize("cuts, paths, needle", [
    ((4, 10), [(0, 0), (0, 1)], "ending at n_steps"),  # the loop runs to 12
    ((5, 12), [(0, 0), (0, 1)], "increasing record steps"),  # 5 is off the record grid
    ((6, 6, 12), [(0, 0, 0)] * 2, "increasing record steps"),
    ((6, 12), [(0, 0), (0,)], "one label per segment"),
    ((6, 12), [(0, 0), (None, 1)], "must run in the first segment"),
    ((4, 8, 12), [(0, None, 0), (0, 1, 1)], "stay ended"),
    ((6, 12), [(0, 2), (1, 2)], "never merge"),
])
def test_bad_cuts_and_paths_are_refused(cuts, paths, needle):
    with pytest.raises(ValueError, match=needle):
        check_tree(cuts, paths, 2, np.arange(0, 13, 2))


CFG = CharLMConfig(d_model=16, n_layers=1, n_heads=1, seq_len=16, batch=4, n_steps=60, log_every=5, eval_windows=16,
                   schedule=("arms", (("wsd", 60, 0.5, 0.1, "linear"), ("wsd", 30, 0.5, 0.1, "linear"),
                                      ("cosine", 60, 0.1))))


def test_the_char_lm_tree_is_the_plain_sweep_where_each_arm_runs():
    """WSD over 60 steps, WSD over 30 (the same lrs up to its decay at step 15) and cosine: cuts (15, 30, 60); the
    two WSD arms are one run over [0, 15). Records and final losses equal the plain zipped sweep's to float32 rounding
    (1e-5 nats after 60 AdamW steps; the two WSD arms differ by > 1e-3 at step 30, so the bound resolves a wrong
    parent); the 30-step arm's records after step 30 and its finals are NaN (not trained)."""
    key, axes = jax.random.key(3), {"arm": [0.0, 1.0, 2.0]}
    table = lr_table(CFG, axes, {"lr": 3e-3})  # what each arm's run takes at steps 0..60
    cuts, paths = tree_by_schedule(table, [60, 30, 60], CFG.log_every)
    assert cuts == (15, 30, 60) and paths == [(0, 0, 0), (0, 1, None), (2, 2, 2)]
    a = sweep(sim(CFG), axes, mode="zip", fixed={"lr": 3e-3}, seeds=2, key=key, progress=False)
    b = tree(CFG, axes, cuts, paths, fixed={"lr": 3e-3}, seeds=2, key=key)
    assert b.loss.dims == a.loss.dims and b.loss.shape == a.loss.shape == (3, 2, 13) and b.loss.dtype == a.loss.dtype
    ran = np.ones(b.loss.shape, bool)
    ran[1, :, 7:] = False  # arm 1 stops at step 30 (record 6)
    np.testing.assert_allclose(b.loss.values[ran], a.loss.values[ran], atol=1e-5)
    np.testing.assert_allclose(b.lr_t.values[ran], a.lr_t.values[ran], rtol=1e-6)
    np.testing.assert_allclose(a.lr_t.values[:, 0], table[:, ::5], rtol=1e-6)  # the table is the runs' own schedule
    assert np.isnan(b.loss.values[~ran]).all() and np.isnan(b.loss_by_position.values[1]).all()
    np.testing.assert_allclose(b.loss_by_position.values[[0, 2]], a.loss_by_position.values[[0, 2]], atol=1e-5)
    assert np.abs(a.loss.values[0, :, 6] - a.loss.values[1, :, 6]).min() > 1e-3
    assert not b.diverged.any() and b.attrs["tree_cuts"] == [15, 30, 60]
    # two sweeps at once per segment: the runs batched in other shapes, the same records to float32 rounding
    c = tree(CFG, axes, cuts, paths, fixed={"lr": 3e-3}, seeds=2, key=key, workers=2)
    np.testing.assert_allclose(c.loss.values[ran], a.loss.values[ran], atol=1e-5)
    assert np.isnan(c.loss.values[~ran]).all()
    with pytest.raises(ValueError, match="workers"):
        tree(CFG, axes, cuts, paths, fixed={"lr": 3e-3}, seeds=2, key=key, workers=0)


def test_a_divergence_in_a_shared_piece_is_every_arms():
    """At lr 1e4 every arm diverges in the first, shared segment: each arm's diverged_step is the plain sweep's."""
    key, axes = jax.random.key(4), {"arm": [0.0, 1.0, 2.0]}
    cuts, paths = (15, 30, 60), [(0, 0, 0), (0, 1, None), (2, 2, 2)]
    a = sweep(sim(CFG), axes, mode="zip", fixed={"lr": 1e4}, seeds=1, key=key, progress=False)
    b = tree(CFG, axes, cuts, paths, fixed={"lr": 1e4}, seeds=1, key=key)
    assert a.diverged.all() and (a.diverged_step.values < 15).all()
    np.testing.assert_array_equal(b.diverged_step.values, a.diverged_step.values)
