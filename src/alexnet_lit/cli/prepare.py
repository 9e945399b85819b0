"""Raw ImageNet to the 256 px store, once (alexnet_lit/data/prepare.py has the steps).

    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256
    alexnet-prepare root=/data/ilsvrc-archives archives=true out_dir=/data/imagenet-256
    python train.py +experiment=paper data.root=/data/imagenet-256
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from alexnet_lit.cli import config_dir
from alexnet_lit.data.classes import UnknownClassFolder
from alexnet_lit.data.datamodule import default_workers
from alexnet_lit.data.prepare import BadImage, Interrupted, prepare
from alexnet_lit.data.sources import unpack_archives


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        if cfg.archives:
            unpack_archives(Path(cfg.root).expanduser())
        manifest = prepare(cfg.root, cfg.out_dir, tuple(cfg.splits), cfg.workers or default_workers(),
                           cfg.chunk_size, cfg.skip_bad, cfg.custom_classes, save_every=cfg.save_every)
    except (BadImage, UnknownClassFolder, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except Interrupted as e:
        print(f"interrupted ({e}); run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    for split, info in manifest["splits"].items():
        print(f"{split}: {info['images']} images of {info['files']} files, {len(info['per_class'])} classes")
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} undecodable file(s), listed in {cfg.out_dir}/manifest.json")
    print(f"store: {cfg.out_dir}  (train with data=imagenet_prepared data.root={cfg.out_dir})")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
