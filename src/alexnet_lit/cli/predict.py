"""Top-k classes with names and probabilities for image files, by a checkpoint.

    alexnet-predict ckpt_path=logs/quickstart/runs/<id>/checkpoints/best-epoch011.ckpt inputs=photos/
    alexnet-predict ckpt_path=... inputs=a.jpg ten_crop=true            # softmax averaged over 10 crops
    alexnet-predict ckpt_path=... 'inputs=[a.jpg,b.png,more/]' out=-    # JSON lines on stdout instead of the table

Inputs are prepared by the checkpoint's input contract (inference.py). A file that cannot be read (empty,
truncated, not an image) is named in the table and in the JSON lines with its reason, and the others are still
predicted; the exit code is 1 when any input failed, 0 when all were predicted, 2 for a user error (no
checkpoint, no inputs) before any work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from alexnet_lit.checkpoint import read
from alexnet_lit.config import ConfigError, PredictConfig, build
from alexnet_lit.data.sources import DecodeError
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.inference import Preprocess, as_list, class_names, image_files, load, pick_device


def check_predict(cfg: DictConfig) -> tuple[PredictConfig, list[Path]]:
    missing = [k for k in ("ckpt_path", "inputs") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: alexnet-predict ckpt_path=CKPT inputs=FILE_OR_FOLDER")
    c = build(PredictConfig, OmegaConf.to_container(cfg, resolve=True))
    read(c.ckpt_path)
    pick_device(c.device)
    return c, image_files(as_list(c.inputs))


def predict(c: PredictConfig, files: list[Path]) -> list[dict]:
    """One result per file, in order: {"path", "top": [{"class", "index", "prob"}...]} or {"path", "error"}."""
    device = pick_device(c.device)
    module, contract = load(c.ckpt_path, device)
    prep = Preprocess(contract, c.ten_crop)
    names = class_names(contract, module.num_classes)
    k = min(c.top_k, module.num_classes)
    results: list[dict | None] = [None] * len(files)
    batch: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not batch:
            return
        x = prep.normalize(torch.stack([t for _, t in batch]).to(device))
        with torch.inference_mode():
            probs = module.probabilities(x).float().cpu()
        top = probs.topk(k, dim=1)
        for (i, _), p, idx in zip(batch, top.values, top.indices):
            results[i] = {"path": str(files[i]), "top": [{"class": names[j], "index": int(j), "prob": float(q)}
                                                          for q, j in zip(p.tolist(), idx.tolist())]}
        batch.clear()

    for i, f in enumerate(files):
        try:
            batch.append((i, prep.uint8(f)))
        except DecodeError as e:
            results[i] = {"path": str(f), "error": str(e).removeprefix(f"{f}: ")}
        if len(batch) == c.batch_size:
            flush()
    flush()
    return [r for r in results if r is not None]


def table(results: list[dict]) -> str:
    lines = []
    width = max(len(r["path"]) for r in results)
    for r in results:
        if "error" in r:
            lines.append(f"{r['path']:<{width}}  FAILED: {r['error']}")
        else:
            lines.append(f"{r['path']:<{width}}  " + "  ".join(f"{t['prob']:6.1%} {t['class']}" for t in r["top"]))
    return "\n".join(lines)


def run(cfg: DictConfig) -> None:
    c, files = check_predict(cfg)
    results = predict(c, files)
    lines = "".join(json.dumps(r) + "\n" for r in results)
    if c.out == "-":
        sys.stdout.write(lines)
    else:
        print(table(results))
        if c.out:
            Path(c.out).write_text(lines)
            print(f"wrote {c.out}")
    failed = sum("error" in r for r in results)
    if failed:
        print(f"{failed} of {len(results)} inputs could not be read (named above); the others were predicted",
              file=sys.stderr)
        sys.exit(1)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(run, cfg)


def main() -> None:
    hydra_entry_point(_hydra_main, "predict", check_predict)


if __name__ == "__main__":
    main()
