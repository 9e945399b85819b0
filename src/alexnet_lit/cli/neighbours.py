"""Figure 4 of the paper (section 6.1): for each query image, the training images nearest to it by Euclidean
distance between their activations at the last, 4096-dimensional hidden layer.

    alexnet-neighbours ckpt_path=logs/quickstart/runs/<id>/checkpoints/best-epoch011.ckpt images=queries/
    alexnet-neighbours ckpt_path=... images=q.jpg train=/data/imagenet/train limit=20000 k=6 out_dir=fig4

``train``: a folder of training images (searched recursively); by default (null) the training split of the run
the checkpoint belongs to, read through its composed config (``<run>/.hydra/config.yaml``: the same data
source, a store included), centre-cropped. Embeddings are ``forward_head(forward_features(x), pre_logits=True)``
(fc7 after its ReLU) of the centre crop prepared by the checkpoint's input contract. Writes ``neighbours.png``
(one row per query: the query, then its k neighbours, each titled with its class and distance) and
``neighbours.json`` (per query: the neighbours' indices, files or store rows, classes and distances).
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from alexnet_lit.checkpoint import read
from alexnet_lit.config import ConfigError, NeighboursConfig, build
from alexnet_lit.data import sources
from alexnet_lit.data.augment import eval_transform
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.inference import Preprocess, as_list, class_names, image_files, load, pick_device
from alexnet_lit.paths import check_writable


def run_config(ckpt_path: str) -> DictConfig | None:
    """The composed config of the run a checkpoint was written by (``<run>/checkpoints/x.ckpt``), if there."""
    path = Path(ckpt_path).expanduser().resolve().parent.parent / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def check_neighbours(cfg: DictConfig) -> NeighboursConfig:
    missing = [k for k in ("ckpt_path", "images") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: alexnet-neighbours ckpt_path=CKPT images=QUERIES "
                          f"[train=FOLDER]")
    c = build(NeighboursConfig, OmegaConf.to_container(cfg, resolve=True))
    read(c.ckpt_path)
    image_files(as_list(c.images), "images")
    if c.train is not None:
        image_files(as_list(c.train), "train")
    elif run_config(c.ckpt_path) is None:
        raise ConfigError(f"train is not set and {c.ckpt_path} is not inside a run folder with .hydra/config.yaml: "
                          f"give the training images, train=/path/to/train")
    check_writable(c.out_dir, "out_dir")
    pick_device(c.device)
    return c


class TrainImages:
    """The images to search: files (a folder given as ``train``), or the run's own training split."""
    def __init__(self, c: NeighboursConfig, prep) -> None:
        self.files: list[Path] | None = None
        if c.train is not None:
            self.files = image_files(as_list(c.train), "train")
            self.labels = [f.parent.name for f in self.files]
            self.n = len(self.files)
            self.prep = prep
        else:
            d = run_config(c.ckpt_path).data
            prepared = d.source == "prepared"
            data = sources.build(d.source, d.root, d.num_classes,
                                 {"train": eval_transform(prep.resize, prep.crop, prepared=prepared)},
                                 d.cache_dir, OmegaConf.to_container(d.generated), False, d.custom_classes,
                                 d.resize_size)["train"]
            self.data, self.prepared = data, prepared
            self.n = len(data)
            self.labels = None
        self.n = min(self.n, c.limit) if c.limit else self.n

    def uint8(self, i: int) -> tuple[torch.Tensor, int | str]:
        if self.files is not None:
            return self.prep.uint8(self.files[i]), self.labels[i]
        x, y = self.data[i]
        return (x.movedim(-1, 0) if self.prepared else x), int(y)  # store crops are HWC

    def name(self, i: int) -> str:
        return str(self.files[i]) if self.files is not None else f"train row {i}"


@torch.inference_mode()
def embed(module, prep, images: list[torch.Tensor], device, batch_size: int) -> torch.Tensor:
    """The 4096-d (fc_units) activations of fc7 after its ReLU (section 6.1), in float32 on the CPU."""
    out = []
    for s in range(0, len(images), batch_size):
        x = prep.normalize(torch.stack(images[s: s + batch_size]).to(device))
        if module.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(module.net.forward_head(module.net.forward_features(x), pre_logits=True).float().cpu())
    return torch.cat(out)


def nearest(queries: torch.Tensor, train: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices) of the k training vectors nearest to each query, Euclidean, nearest first."""
    d = torch.cdist(queries.double(), train.double())
    dist, idx = d.topk(min(k, train.shape[0]), dim=1, largest=False)
    return dist.float(), idx


def grid(path: Path, queries: list[torch.Tensor], q_titles: list[str], rows: list[list[torch.Tensor]],
         titles: list[list[str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.8 * len(rows)), squeeze=False)
    for r, (q, qt, imgs, ts) in enumerate(zip(queries, q_titles, rows, titles)):
        for c_, (img, t) in enumerate([(q, qt), *zip(imgs, ts)]):
            ax = axes[r][c_]
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_title(t, fontsize=6, color="C3" if c_ == 0 else "black")
            ax.axis("off")
        for c_ in range(1 + len(imgs), cols):
            axes[r][c_].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> None:
    c = check_neighbours(cfg)
    device = pick_device(c.device)
    module, contract = load(c.ckpt_path, device)
    prep = Preprocess(contract)
    names = class_names(contract, module.num_classes)
    query_files = image_files(as_list(c.images), "images")
    query_imgs = [prep.uint8(f) for f in query_files]
    train = TrainImages(c, prep)
    train_imgs, train_labels = zip(*(train.uint8(i) for i in range(train.n)))
    q = embed(module, prep, query_imgs, device, c.batch_size)
    t = embed(module, prep, list(train_imgs), device, c.batch_size)
    dist, idx = nearest(q, t, c.k)

    def label(y) -> str:
        return names[y] if isinstance(y, int) and y < len(names) else str(y)

    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = []
    for f, ds, js in zip(query_files, dist.tolist(), idx.tolist()):
        record.append({"query": str(f), "neighbours": [{"index": j, "image": train.name(j),
                                                        "class": label(train_labels[j]), "distance": d}
                                                       for d, j in zip(ds, js)]})
    (out / "neighbours.json").write_text(json.dumps(record, indent=1))
    grid(out / "neighbours.png", query_imgs, [f.name[:24] for f in query_files],
         [[train_imgs[j] for j in js] for js in idx.tolist()],
         [[f"{label(train_labels[j])[:18]}\n{d:.1f}" for d, j in zip(ds, js)]
          for ds, js in zip(dist.tolist(), idx.tolist())])
    print(f"{len(query_files)} queries against {train.n} training images: {out / 'neighbours.png'}, "
          f"{out / 'neighbours.json'}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="neighbours")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(run, cfg)


def main() -> None:
    hydra_entry_point(_hydra_main, "neighbours", check_neighbours)


if __name__ == "__main__":
    main()
