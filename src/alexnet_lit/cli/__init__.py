"""Thin entry points: each composes the Hydra config in ``conf/``, checks it (checks.py) and hands it to the
library; how they all start, fail and stop is entry.py.

    python train.py +experiment=no_lrn       alexnet-train     cli/train.py      fit, then test the best checkpoint
    alexnet-eval ckpt_path=CKPT              cli/eval.py       the centre crop and the 10-crop view
    alexnet-prepare root=IMAGENET out_dir=S  cli/prepare.py    the 256 px store, its mean image and PCA
    alexnet-describe +experiment=paper       cli/describe.py   the layer table and the settings
    alexnet-predict / -neighbours / -kernels cli/predict.py, neighbours.py, kernels.py   a checkpoint on images
    alexnet-report runs=SWEEP                cli/report.py     the ablation report
"""
