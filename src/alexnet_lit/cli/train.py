"""Train, then test the best checkpoint.

    python train.py                                   # conf/train.yaml as composed (alias: alexnet-train)
    python train.py +experiment=quickstart            # embedded data, a few minutes on 2 CPU cores
    python train.py +experiment=no_lrn data.root=/data/imagenet-256
    python train.py -m +experiment=paper,no_lrn,tanh  # a sweep, one output folder per run
    python train.py +experiment=paper +debug=tiny     # the same code path, tiny and fast (debug=fdr: one batch)
    python train.py run_id=a checkpoint_every_n_steps=500   # logs/<experiment>/runs/a/, step.ckpt every 500 steps
    python train.py run_id=a ckpt_path=last                 # resume run a from its newest checkpoint, exactly
    python train.py ckpt_path=logs/.../checkpoints/step.ckpt    # resume that run, in its folder

Steps: 1. compose and check the config (nothing is read before it passes); 2. the checkpoint to resume (if any)
and the seed (the checkpoint's when resuming); 3. instantiate the model, data, loggers, callbacks and trainer;
4. fit; 5. test the checkpoint that was best by the val error (metrics.MONITOR) on 1 and 10 crops; 6. return it
to Hydra (sweepers that optimise read it). A resumed run continues in its run folder: the same CSV (rows after
the checkpoint's step are dropped, they are logged again), the same W&B run, the same best-checkpoint tracking.
"""

from __future__ import annotations

import os
import random

import hydra
from lightning import pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig

from alexnet_lit import loggers as wandb_runs
from alexnet_lit.checkpoint import remove_temporaries, saved_seed
from alexnet_lit.checks import check_train, preflight_train
from alexnet_lit.config import Source, plain
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.metrics import MONITOR
from alexnet_lit.module import AlexNetModule
from alexnet_lit.parallel import replica
from alexnet_lit.run_record import RunRecord
from alexnet_lit.signals import Signalled
from alexnet_lit.trainer import best_checkpoint, extra_callbacks, instantiate_all, make_trainer


def run_seed(seed: int | None, state: dict | None) -> int:
    """The run's seed: the config's, else the resumed checkpoint's, else a fresh one (printed, so it can be
    given again). Seed 0 is a seed like any other."""
    if seed is not None:
        return int(seed)
    if state is not None and (saved := saved_seed(state)) is not None:
        return saved
    seed = random.SystemRandom().randrange(2**32)
    rank_zero_info(f"seed={seed} (drawn: pass seed={seed} to repeat this run)")
    return seed


def run(cfg: DictConfig) -> dict[str, float]:
    ckpt, state = check_train(cfg)
    run_dir = str(cfg.paths.output_dir)
    checkpoints = os.path.join(run_dir, "checkpoints")
    seed = run_seed(cfg.seed, state)
    pl.seed_everything(seed, workers=True, verbose=False)  # the initial weights; the rest is keyed (order.py)
    container = plain(cfg)
    model = AlexNetModule(**container["model"])
    datamodule = AlexNetDataModule(**container["data"], seed=seed)
    callbacks = instantiate_all(cfg.callbacks) + extra_callbacks(cfg, seed, checkpoints)
    trainer = make_trainer(cfg, callbacks, run_dir)
    if datamodule.source not in (Source.generated, Source.archives):  # those make their files in prepare_data
        datamodule.check_training_images(replica(trainer)[1])
    if rank_zero_only.rank == 0:  # (the trainer knows its rank only once fit has launched the processes)
        remove_temporaries(checkpoints)  # writes a kill interrupted; the checkpoints themselves are whole
        if state is not None:
            rank_zero_info(f"resuming from {ckpt} (epoch {state['epoch']}, step {state['global_step']})")
    loggers = instantiate_all(cfg.logger)  # last: a W&B run starts (or resumes) here
    trainer.loggers = loggers
    if state is not None and rank_zero_only.rank == 0:
        wandb_runs.continue_csv(loggers, int(state["global_step"]))
    for lg in loggers:
        lg.log_hyperparams(container)
    record = RunRecord(run_dir, enabled=rank_zero_only.rank == 0)  # run.json: running, then how it ended
    record.start()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = best_checkpoint(trainer)
        if best is not None and best.best_model_score is not None:
            metrics[f"best/{MONITOR}"] = float(best.best_model_score)
            last = f", last epoch {metrics[MONITOR]:.4f}" if MONITOR in metrics else ""
            rank_zero_info(f"best {MONITOR} {metrics[f'best/{MONITOR}']:.4f} "
                           f"({os.path.basename(best.best_model_path)}{', tested below' if cfg.test else ''}){last}")
        if cfg.test and not trainer.interrupted:
            path = best.best_model_path if best is not None else ""
            for result in trainer.test(model, datamodule=datamodule, ckpt_path=path or None, weights_only=True):
                metrics.update({k: float(v) for k, v in result.items()})
    except BaseException as e:
        wandb_runs.finish(loggers, failed=True)
        record.end("interrupted" if isinstance(e, (Signalled, KeyboardInterrupt)) else "failed",
                   reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        raise
    wandb_runs.finish(loggers, failed=trainer.interrupted)
    record.end("interrupted" if trainer.interrupted else "finished", metrics)
    return metrics


def sweeper_value(metrics: dict[str, float] | None) -> float:
    """What Hydra sweepers that optimise receive: the run's best MONITOR (never the last epoch's, never
    None); NaN when nothing was validated or the job failed."""
    return (metrics or {}).get(f"best/{MONITOR}", float("nan"))


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    return sweeper_value(exit_on_user_error(run, cfg))


def main() -> None:
    hydra_entry_point(_hydra_main, "train", preflight_train)


if __name__ == "__main__":
    main()
