"""experiments/lrn_cifar10/lrn_cifar10.py: the shortened schedule, the effect with its noise, and the step cost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments" / "lrn_cifar10"))
import lrn_cifar10  # noqa: E402


def test_the_schedule_keeps_cuda_convnets_two_last_drops():
    assert lrn_cifar10.schedule(520) == ["trainer.max_epochs=520", "model.scheduler.milestones=[500,510]"]
    assert lrn_cifar10.schedule(12) == ["trainer.max_epochs=12", "model.scheduler.milestones=[10,11]"]


def test_effect_is_off_minus_on_with_its_standard_error():
    runs = [{"lrn": "on", "test/top1_err_10crop": v} for v in (11.0, 12.0, 13.0)]
    runs += [{"lrn": "off", "test/top1_err_10crop": v} for v in (14.0, 15.0, 16.0)]
    s = lrn_cifar10.summary(runs)
    assert s["on"]["mean"] == 12.0 and s["off"]["mean"] == 15.0
    assert s["effect"]["points"] == pytest.approx(3.0)
    assert s["effect"]["se"] == pytest.approx((2 / 3) ** 0.5)
    assert s["effect"]["resolvable"] == pytest.approx(2 * (2 / 3) ** 0.5)
    assert s["effect"]["verdict"].startswith("beyond noise")
    one = lrn_cifar10.summary([runs[0], runs[3]])
    assert one["effect"]["se"] is None and one["effect"]["verdict"] == "no noise estimate (1 seed)"


def test_the_step_cost_trains_the_experiments_net_with_and_without_its_two_lrn_layers():
    from alexnet_lit.models.lrn import LocalResponseNorm

    for lrn, layers in ((True, 2), (False, 0)):
        assert sum(isinstance(m, LocalResponseNorm) for m in lrn_cifar10.net(lrn)[0].modules()) == layers
    on, off = (lrn_cifar10.step_seconds(lrn, steps=1, batch=2) for lrn in (True, False))
    assert len(on) == len(off) == 1 and on[0] > 0 and off[0] > 0


def test_unknown_words_are_one_error_line(capsys):
    with pytest.raises(SystemExit, match="^2$"):
        lrn_cifar10.main(["costs"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown argument 'costs'")
