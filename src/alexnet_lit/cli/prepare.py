"""Raw ImageNet to the 256 px store, once (alexnet_lit/data/prepare.py has the steps).

    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256              # JPEG, quality 90: ~1/8 of raw
    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256 quality=95   # larger, closer to the pixels
    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256-raw format=raw  # uint8 rows, no decode
    alexnet-prepare root=/data/ilsvrc-archives archives=true out_dir=/data/imagenet-256
    python train.py +experiment=paper data.root=/data/imagenet-256

Exit codes: 0 done; 2 a user error (a missing or wrong key, no such root, an out_dir holding another source's
store or one of another format, a class folder that is not a wnid), one line, before any work; 1 undecodable
files were found (listed, and in manifest.json; fix them and run again, or skip_bad=true); 130 Ctrl-C and 143
SIGTERM, after saving what is finished: the same command continues.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from alexnet_lit.config import ConfigError, PrepareConfig, build, plain
from alexnet_lit.data.chunks import BadImage
from alexnet_lit.data.prepare import Interrupted, check_out_dir, prepare
from alexnet_lit.data.sources import unpack_archives
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.signals import Signalled


def check_prepare(cfg: DictConfig) -> PrepareConfig:
    """Before any work: both folders given, the root there, the out_dir free of another source's store."""
    missing = [k for k in ("root", "out_dir") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: alexnet-prepare root=/data/imagenet "
                          f"out_dir=/data/imagenet-256 (root holds train/<wnid>/ and val/<wnid>/)")
    c = build(PrepareConfig, OmegaConf.to_container(cfg, resolve=True))
    root, out = Path(c.root).expanduser().resolve(), Path(c.out_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"root={c.root}: no such folder; it must hold train/<wnid>/ and val/<wnid>/ image folders"
                          + (" (or the official archives, with archives=true)" if not c.archives else ""))
    check_out_dir(out, root, c.overwrite, c.format)
    return c


def run(cfg: DictConfig) -> None:
    c = check_prepare(cfg)
    try:
        if c.archives:
            unpack_archives(Path(c.root).expanduser())
        manifest = prepare(c.root, c.out_dir, **{k: v for k, v in plain(c).items() if k not in ("root", "out_dir")})
    except BadImage as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except Interrupted as e:
        code = e.signal.exit_code if isinstance(e.signal, Signalled) else 130
        print(f"interrupted ({e}); run the same command again to continue", file=sys.stderr)
        sys.exit(code)
    for split, info in manifest["splits"].items():
        per_image = info["bytes"] / max(1, info["images"])
        print(f"{split}: {info['images']} images of {info['files']} files, {len(info['per_class'])} classes, "
              f"{info['bytes'] / 2**20:,.1f} MiB ({per_image / 1024:.1f} KiB an image)")
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} undecodable file(s), listed in {c.out_dir}/manifest.json")
    print(f"store: {c.out_dir}  (train with data=imagenet_prepared data.root={c.out_dir})")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(run, cfg)


def main() -> None:
    hydra_entry_point(_hydra_main, "prepare", check_prepare)


if __name__ == "__main__":
    main()
