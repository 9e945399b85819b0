"""The LightningModule: AlexNet, cross-entropy, SGD with momentum, and the paper's plateau schedule (section 5).

    python train.py                                       # the composed config (conf/train.yaml)
    python train.py model.optimizer.name=paper            # the paper's exact update rule (paper_sgd.py)
    python train.py model.optimizer.bias_lr_mult=2 model.optimizer.bias_weight_decay=false   # Caffe's bias rule

The optimisation of section 5 (SGD on weights and biases, the plateau schedule and its end) is plateau.py.
``model.optimizer.weight_decay=null`` takes each layer's decay from the net (a CIFAR net's layer-params ``wc``).

Evaluation: a test batch of shape [B, 10, C, H, W] is the 10-crop view (section 4.1); its softmax is averaged
over the crops and logged as ``test/top1_err_10crop``; a plain [B, C, H, W] batch is logged as ``test/top1_err``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning import pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.nn import functional as F

from alexnet_lit import models, parallel, plateau
from alexnet_lit.checkpoint import upgrade
from alexnet_lit.config import ModelConfig, OptimizerConfig, build, plain
from alexnet_lit.data import ten_crop
from alexnet_lit.flops import step_flops
from alexnet_lit.metrics import MONITOR, TEN_CROP, error_metrics
from alexnet_lit.models import towers


class AlexNetModule(pl.LightningModule):
    def __init__(self, cfg: ModelConfig | None = None, **kwargs: Any) -> None:
        """``cfg``, or the ``model`` group's keys (ModelConfig in config/model.py) as keyword arguments."""
        super().__init__()
        self.cfg = build(ModelConfig, kwargs, "model") if cfg is None else cfg
        # every key, defaults included, as plain containers: the checkpoint rebuilds this exact network and
        # still loads with torch.load(weights_only=True)
        self.save_hyperparameters(plain(self.cfg))
        self.net = models.build(self.cfg)  # AlexNet, or a CIFAR net of cuda-convnet's (model.arch)
        self.num_classes = self.net.num_classes
        # the model summary runs it through the network: real FLOPs and map sizes instead of "Total FLOPs: 0"
        self.example_input_array = torch.zeros(1, self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size)
        self.optimizer_cfg, self.scheduler_cfg = self.cfg.optimizer, self.cfg.scheduler
        self.channels_last = self.cfg.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.cfg.compile:  # in place: no "_orig_mod." in the state dict, checkpoints load either way
            self.net.compile()
        self.train_metrics = error_metrics(self.num_classes).clone(prefix="train/")
        self.val_metrics = error_metrics(self.num_classes, count_images=True).clone(prefix="val/")
        self.test_metrics = error_metrics(self.num_classes, count_images=True).clone(prefix="test/")
        self.test_metrics_10crop = error_metrics(self.num_classes, True).clone(prefix="test/", postfix=TEN_CROP)
        self.sync_group = None  # the group logged values and metrics are reduced over (None: every rank)

    def configure_model(self) -> None:
        """On the tower strategy (parallel.py): keep this rank's tower of every layer (models/towers.py), and reduce
        metrics over the data-parallel replicas only (the two towers of a pair hold the same predictions)."""
        if not parallel.is_towers(self._trainer):
            return
        parallel.check_towers(self.net.towers.value, self.trainer.world_size)
        mesh = self.trainer.strategy.device_mesh
        towers.split(self.net, mesh["tensor_parallel"])
        self.sync_group = parallel.data_parallel_group(self.trainer)
        for metrics in (self.train_metrics, self.val_metrics, self.test_metrics, self.test_metrics_10crop):
            for metric in metrics.values():
                metric.process_group = self.sync_group

    def on_before_optimizer_step(self, optimizer) -> None:
        """Tower pairs as data-parallel replicas: average each shard's gradient over the replicas. Per-layer weight
        decay (``model.optimizer.weight_decay=null``: a CIFAR net's layer-params ``wc``): grad += wc x weight, what
        the optimizer's own weight_decay adds, per layer, so the two param groups (weights, biases) stay two."""
        if self.optimizer_cfg.weight_decay is None:
            with torch.no_grad():
                for name, layer in self.net.weighted_layers().items():
                    wc = self.net.weight_decay[name]
                    if wc and layer.weight.grad is not None:
                        layer.weight.grad.add_(layer.weight, alpha=wc)
        if self.net.tower_group is not None:
            _, replicas = parallel.replica(self.trainer)
            towers.average_gradients(self.net, self.sync_group, replicas)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """FLOPs of one training step (forward + backward) at this batch's size, counted once on the meta device:
        the throughput monitor turns it into train/flops_per_sec."""
        if getattr(self, "flops_per_batch", None) is None:
            with torch.device("meta"):
                net = models.build(self.cfg)
                x = torch.empty(batch[0].shape[0], net.features[0].in_channels, net.input_size, net.input_size)
            self.flops_per_batch = step_flops(lambda: net(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax; averaged over the crops of the 10-crop view's batch (data/ten_crop.py)."""
        return ten_crop.probabilities(self, x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits.float(), y)
        self.train_metrics.update(logits.detach(), y)
        # not prog_bar=True: Lightning turns progress-bar values into Python numbers after every batch (a host sync
        # per step); our bars read the loss themselves on logging steps (callbacks/progress.py)
        self.log("train/loss", loss)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        probs = self.probabilities(x)
        self.val_metrics.update(probs, y)
        self.log("val/loss", F.nll_loss(probs.clamp_min(1e-12).log(), y), sync_dist=True,
                 sync_dist_group=self.sync_group)
        self.log_dict(self.val_metrics, prog_bar=True)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        probs = self.probabilities(x)
        metrics, suffix = (self.test_metrics_10crop, TEN_CROP) if ten_crop.is_view(x) else (self.test_metrics, "")
        metrics.update(probs, y)
        self.log(f"test/loss{suffix}", F.nll_loss(probs.clamp_min(1e-12).log(), y), sync_dist=True,
                 sync_dist_group=self.sync_group, add_dataloader_idx=False)
        self.log_dict(metrics, add_dataloader_idx=False)

    # --- optimisation (section 5, plateau.py) -------------------------------------------------------------
    def configure_optimizers(self):
        return plateau.configure(list(self.net.named_parameters()), self.optimizer_cfg, self.scheduler_cfg)

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Step the schedule; the plateau schedule ends training at the plateau after the last allowed reduction."""
        scheduler.step() if metric is None else scheduler.step(metric)
        if isinstance(scheduler, plateau.Plateau) and scheduler.exhausted:
            rank_zero_info(f"{MONITOR} plateaued after {scheduler.max_reductions} learning-rate reductions: "
                           f"stopping (section 5)")
            self.trainer.should_stop = True

    # --- checkpoints: the schedule's state and a mid-epoch's training errors ----------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None and parallel.replica(self.trainer)[1] == 1 and self.trainer.state.fn == "fit":
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
            if done < self.trainer.num_training_batches:  # mid-epoch: the epoch's train/top-k so far (see below)
                checkpoint["train_metrics"] = {name: metric_state(m) for name, m in self.train_metrics.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade(checkpoint)  # an earlier version's layout (checkpoint.py), before Lightning restores the rest
        self._resumed_hparams = checkpoint.get("hyper_parameters")
        # one replica: a resumed epoch's train/top1_err covers the whole epoch. Under DDP each rank has its own
        # counts and only rank 0's would be saved, so there it covers the part of the epoch after the resume.
        saved = checkpoint.get("train_metrics")
        if saved and self._trainer is not None and parallel.replica(self.trainer)[1] == 1:
            for name, m in self.train_metrics.items():
                if name in saved:
                    m.persistent(True)
                    m.load_state_dict(saved[name])
                    m.persistent(False)
            self.train_metrics.to(self.device)

    def on_train_start(self) -> None:
        saved, self._resumed_hparams = getattr(self, "_resumed_hparams", None), None
        if saved is not None:
            self.apply_changed_settings(saved)

    def apply_changed_settings(self, saved: dict[str, Any]) -> None:
        """A resume restores the optimizer and the schedule as they were saved; settings given differently now are
        applied on top (and said): the new lr keeps the reductions made so far (lr x factor^reductions)."""
        old, new = build(OptimizerConfig, saved.get("optimizer", {}), "checkpoint"), self.optimizer_cfg
        old_s, new_s = saved.get("scheduler", {}), plain(self.scheduler_cfg)
        changed = [f"model.optimizer.{k} {getattr(old, k)} -> {getattr(new, k)}" for k in
                   ("lr", "momentum", "weight_decay", "bias_lr_mult", "bias_weight_decay") if getattr(old, k) !=
                   getattr(new, k)]
        changed += [f"model.scheduler.{k} {old_s.get(k)} -> {new_s[k]}" for k in ("factor", "patience", "threshold")
                    if old_s.get(k, new_s[k]) != new_s[k]]
        if not changed:
            return
        optimizer = self.trainer.optimizers[0]
        schedule = self.trainer.lr_scheduler_configs[0].scheduler if self.trainer.lr_scheduler_configs else None
        done = plateau.reductions(schedule)
        for group in optimizer.param_groups:
            bias = group.get("name") == "biases"
            before, now = plateau.group_settings(old, bias), plateau.group_settings(new, bias)
            group.update(now, momentum=new.momentum, lr=now["lr"] * (group["lr"] / before["lr"] if before["lr"] else
                                                                     self.scheduler_cfg.factor**done))
        if isinstance(schedule, plateau.Plateau):
            schedule.factor, schedule.patience, schedule.threshold = new_s["factor"], new_s["patience"], \
                new_s["threshold"]
        rank_zero_info(f"resumed with changed settings, applied: {'; '.join(changed)} (lr now "
                       f"{optimizer.param_groups[0]['lr']:g} after {done} reductions)")


def metric_state(metric: Any) -> dict[str, torch.Tensor]:
    """A torchmetrics metric's accumulated state as plain tensors (a weights_only checkpoint holds it)."""
    metric.persistent(True)
    state = {k: v.detach().cpu().clone() for k, v in metric.state_dict().items()}
    metric.persistent(False)
    return state
