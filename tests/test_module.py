"""The LightningModule: error metrics against a hand count, 10-crop averaging, optimiser groups, plateau stop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alexnet_lit.metrics import error_metrics
from alexnet_lit.module import AlexNetModule

OPT = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "bias_lr_mult": 1.0, "bias_weight_decay": True}
SCHED = {"factor": 0.1, "patience": 0, "threshold": 1e-4, "max_lr_reductions": 2}
NET = {"num_classes": 10, "input_size": 64, "width": 0.0625, "fc_units": 16}


def module(**overrides) -> AlexNetModule:
    opt = {**OPT, **overrides.pop("optimizer", {})}
    sched = {**SCHED, **overrides.pop("scheduler", {})}
    return AlexNetModule(optimizer=opt, scheduler=sched, **{**NET, **overrides})


def test_top1_top5_error_match_a_hand_count():
    torch.manual_seed(0)
    logits, target = torch.randn(200, 10), torch.randint(0, 10, (200,))
    metrics = error_metrics(10)
    metrics.update(logits, target)
    out = metrics.compute()
    ranks = (logits > logits.gather(1, target[:, None])).sum(1)  # how many classes score above the true one
    assert out["top1_err"].item() == pytest.approx((ranks >= 1).float().mean().item())
    assert out["top5_err"].item() == pytest.approx((ranks >= 5).float().mean().item())
    # two batches accumulate as one (micro average over images, as the paper counts)
    metrics.reset()
    metrics.update(logits[:50], target[:50])
    metrics.update(logits[50:], target[50:])
    assert metrics.compute()["top1_err"].item() == pytest.approx(out["top1_err"].item())


def test_ten_crop_averages_softmax_over_crops():
    torch.manual_seed(0)
    m = module(init="kaiming").eval()
    x = torch.randn(3, 10, 3, 64, 64) * 3
    expected = torch.stack([m(x[i]).softmax(-1).mean(0) for i in range(3)])
    torch.testing.assert_close(m.probabilities(x), expected)
    # and differs from the average of logits, which is not what the paper does
    logit_avg = torch.stack([m(x[i]).mean(0).softmax(-1) for i in range(3)])
    assert not torch.allclose(m.probabilities(x), logit_avg)


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("paper", "PaperSGD")])
def test_optimizer_bias_groups(name, cls):
    m = module(optimizer={"name": name, "bias_lr_mult": 2.0, "bias_weight_decay": False})
    conf = m.configure_optimizers()
    opt = conf["optimizer"]
    assert type(opt).__name__ == (cls if isinstance(cls, str) else cls.__name__)
    weights, biases = opt.param_groups
    assert weights["lr"] == 0.01 and weights["weight_decay"] == 5e-4
    assert biases["lr"] == 0.02 and biases["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in biases["params"]) and len(biases["params"]) == 8
    assert conf["lr_scheduler"]["monitor"] == "val/top1_err"


def test_plateau_stops_after_max_reductions():
    """patience 0 and an error that never improves: lr 0.01 -> 1e-3 -> 1e-4, and the next plateau stops."""
    m = module()
    sched = m.configure_optimizers()["lr_scheduler"]["scheduler"]
    m._trainer = SimpleNamespace(should_stop=False, is_global_zero=True)
    lrs = []
    for _epoch in range(6):
        m.lr_scheduler_step(sched, 0.5)
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        if m.trainer.should_stop:
            break
    # the first value sets the best; then each epoch reduces; the third reduction is one past max_lr_reductions=2
    assert lrs == pytest.approx([0.01, 1e-3, 1e-4, 1e-5])
    assert sched.reductions == 3 and m.trainer.should_stop
    # its count is its own state (Lightning saves it), not the config's limit; an older checkpoint's is moved in
    assert sched.state_dict()["reductions"] == 3 and "max_reductions" not in sched.state_dict()
    fresh = module().configure_optimizers()["lr_scheduler"]["scheduler"]
    fresh.load_state_dict(sched.state_dict())
    assert fresh.reductions == 3 and fresh.max_reductions == 2
    from alexnet_lit.checkpoint import upgrade

    old = {"lr_reductions": 2, "lr_schedulers": [{k: v for k, v in sched.state_dict().items() if k != "reductions"}]}
    assert upgrade(old)["lr_schedulers"][0]["reductions"] == 2 and "lr_reductions" not in old


def test_a_resume_with_changed_settings_keeps_the_reductions_and_the_bias_rule():
    """Two plateaus (lr 0.01 -> 1e-4), then resumed with lr 0.02, Caffe's bias rule and patience 3: weights at
    0.02 x 0.1^2, biases at twice that without decay, the schedule's patience the new one, its count kept."""
    old = module()
    conf = old.configure_optimizers()
    sched = conf["lr_scheduler"]["scheduler"]
    old._trainer = SimpleNamespace(should_stop=False)
    for _ in range(3):
        old.lr_scheduler_step(sched, 0.5)
    assert sched.reductions == 2
    new = module(optimizer={"lr": 0.02, "bias_lr_mult": 2.0, "bias_weight_decay": False}, scheduler={"patience": 3})
    new._trainer = SimpleNamespace(optimizers=[conf["optimizer"]],
                                   lr_scheduler_configs=[SimpleNamespace(scheduler=sched)])
    new.apply_changed_settings(dict(old.hparams))
    weights, biases = conf["optimizer"].param_groups
    assert weights["lr"] == pytest.approx(2e-4) and weights["weight_decay"] == 5e-4
    assert biases["lr"] == pytest.approx(4e-4) and biases["weight_decay"] == 0.0
    assert sched.patience == 3 and sched.reductions == 2
