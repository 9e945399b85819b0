"""Print the network of the composed config, layer by layer with its settings; the last line is the parameter count.

    alexnet-describe                               # the paper's net: ... total params: 60,965,224
    alexnet-describe model.towers=one_half         # 59,798,312 (the paper's one-GPU net)
    alexnet-describe +experiment=tanh              # every ablation that changes the network shows in the rows
    alexnet-describe trainer=towers_cpu            # one tower per device: what each rank holds, where they talk
    alexnet-describe +experiment=figure1           # cuda-convnet's layers-80sec: ... total params: 145,578

Takes the same config and overrides as train.py (conf/train.yaml); reads no data.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alexnet_lit import models
from alexnet_lit.checks import check
from alexnet_lit.config import ModelConfig, build, plain
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.models.alexnet import AlexNet
from alexnet_lit.models.cuda_convnet import NETS
from alexnet_lit.models.towers import exchanges
from alexnet_lit.parallel import is_towers_config as is_towers
from alexnet_lit.parallel import replicas


def input_settings(data: DictConfig) -> str:
    """What reaches conv1: the pixel scale and the mean that is subtracted."""
    mean = "the mean image" if data.normalize.value == "mean_image" else "the channel mean, / std"
    return f"pixels 0..{data.pixel_max:g} (pixel_max) minus {mean}"


def training_settings(model: DictConfig) -> str:
    """How the net is trained: the optimizer's rates and decay, the schedule (the rows show each layer's init)."""
    o, s = model.optimizer, model.scheduler
    decay = "each layer's wc" if o.weight_decay is None else f"{o.weight_decay:g}"
    sched = s.name.value + (f" x{s.factor:g} at epochs {list(s.milestones)}" if s.name.value == "step" else
                            f" x{s.factor:g}, patience {s.patience}" if s.name.value == "plateau" else "")
    return (f"init {model.init.value}" + (" with the full-size gain" if model.get("init_full_size_gain")
                                               and model.init.value in ("paper", "caffe") else "")
            + f"; {o.name.value} lr {o.lr:g} (biases x{o.bias_lr_mult:g}), momentum {o.momentum:g}, weight decay "
            f"{decay}; schedule {sched}")


def describe(cfg: DictConfig, console: Console | None = None) -> int:
    check(cfg)
    net = models.build(build(ModelConfig, plain(cfg.model), "model"))
    name = "AlexNet" if isinstance(net, AlexNet) else f"cuda-convnet's {net.arch.value} ({NETS[net.arch]['files']})"
    table = Table(title=f"{name}: towers={net.towers.value}, input {net.input_size}x{net.input_size}")
    two_devices = is_towers(cfg.trainer)
    columns = ["layer", "operation", "tower", "output shape", "params"] + (["rank 0 | rank 1"] if two_devices else [])
    for col in columns:
        table.add_column(col, justify="right" if col == "params" else "left")
    channels = net.cfg.in_channels
    shape_in = f"{channels} x {net.input_size} x {net.input_size}"
    both = ["the whole batch, both"] if two_devices else []
    table.add_row("input", input_settings(cfg.data), "", shape_in, "", *both)
    for name, op, tower, shape, params in net.describe():
        row = [name, op, tower, " x ".join(map(str, shape)), f"{params:,}" if params else ""]
        if two_devices:
            row.append(held_by(name, shape, params))
        table.add_row(*row)
    total = sum(p.numel() for p in net.parameters())
    console = console or Console(width=150)
    console.print(table)
    if two_devices:
        print_exchanges(cfg, net, console)
    console.print(training_settings(cfg.model), highlight=False)
    console.print(f"total params: {total:,}", highlight=False)
    return total


def held_by(name: str, shape: tuple[int, ...], params: int) -> str:
    """What each rank of a tower pair holds of a layer (trainer=towers: one tower per device)."""
    if params:
        return f"{shape[0] // 2} units, {params // 2:,} params each"
    if name == "flatten":
        return "after the all-gather"
    return "each its own channels" if len(shape) == 3 else "each its own units"


def print_exchanges(cfg: DictConfig, net: AlexNet, console: Console) -> None:
    """The all-gathers between the towers and the bytes each moves per image, at the activations' precision."""
    precision = str(cfg.trainer.precision)
    width = 2 if "16" in precision else 8 if precision.startswith("64") else 4
    table = Table(title=f"Between the towers (rank 0 <-> rank 1), per image, {width}-byte activations "
                        f"(trainer.precision={cfg.trainer.precision}); {replicas(cfg.trainer)} data-parallel pair(s)")
    for col in ("where", "what", "bytes sent per rank (forward)", "backward"):
        table.add_column(col, justify="right" if col.startswith("bytes") else "left")
    total = 0
    for where, what, sent in exchanges(net, width):
        back = "nothing (each keeps its half)" if where == "logits" else "the same bytes (reduce-scatter)"
        total += sent * (1 if where == "logits" else 2)
        table.add_row(where, what, f"{sent:,}", back)
    console.print(table)
    console.print(f"bytes per image each rank sends, forward + backward: {total:,} "
                  f"({total * 128 / 2**20:.1f} MiB per batch of 128)", highlight=False)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(describe, cfg)


def main() -> None:
    sys.argv += ["hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    hydra_entry_point(_hydra_main, "train", check)


if __name__ == "__main__":
    main()
