"""The allowed values of the settings that name a choice (str enums: a member equals its name, so plain strings
compare and look up alike). Each member's comment says where it comes from."""

from __future__ import annotations

from enum import Enum


class TowerConv(str, Enum):
    grouped = "grouped"  # conv2, conv4, conv5 as one grouped convolution (faster on oneDNN CPUs: bench-train)
    split = "split"  # as two convolutions, one per tower, on the halves of the same weight (identical numbers)


class Towers(str, Enum):
    two = "two"  # section 3.2: the paper's net, two towers
    one_half = "one_half"  # the footnote's one-GPU net: half the kernels in conv1..conv4
    one = "one"  # one full-width tower


class Arch(str, Enum):
    alexnet = "alexnet"  # section 3, models/alexnet.py
    # cuda-convnet's CIFAR-10 nets (models/cuda_convnet.py), which the paper's CIFAR-10 claims rest on (footnote 3)
    cifar_80sec = "cifar_80sec"  # layers-80sec.cfg: Figure 1's four-layer net
    cifar_19pct = "cifar_19pct"  # layers-19pct.cfg: the same without the 64-unit hidden layer
    cifar_11pct = "cifar_11pct"  # layers-conv-local-11pct.cfg: section 3.3's net with LRN
    cifar_13pct = "cifar_13pct"  # layers-conv-local-13pct.cfg: the released net without LRN


class Activation(str, Enum):
    relu = "relu"  # section 3.1
    tanh = "tanh"  # Figure 1's comparison: tanh(x)
    lecun_tanh = "lecun_tanh"  # 1.7159 tanh(2x/3) (LeCun et al. 1998): the paper gives no constants


class Pool(str, Enum):
    overlap = "overlap"  # section 3.4: z=3, s=2
    non_overlap = "non_overlap"  # z=2, s=2


class Init(str, Enum):
    paper = "paper"  # section 5: N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7
    caffe = "caffe"  # bvlc_alexnet's train_val.prototxt
    kaiming = "kaiming"  # He-normal, a modern baseline
    lecun = "lecun"  # N(0, 1/fan-in), zero biases: variance-preserving for tanh (LeCun et al. 1998)
    cuda_convnet = "cuda_convnet"  # the CIFAR nets' layer files: N(0, initW) per layer, zero biases


class Scheduler(str, Enum):
    plateau = "plateau"  # section 5: lr / 10 when the val error (metrics.MONITOR) stops improving
    step = "step"  # lr x factor at each of ``milestones`` (epochs): cuda-convnet's hand-lowered rates
    constant = "constant"  # Figure 1: one rate throughout


class LRNConvention(str, Enum):
    paper = "paper"  # k + alpha * sum a^2, as printed
    cuda_convnet = "cuda_convnet"  # k + alpha/n * sum a^2
    caffe = "caffe"  # 1 + alpha/n * sum a^2


class LRNKernel(str, Enum):
    fused = "fused"  # closed-form forward and backward, each one torch.compile'd loop (models/lrn.py)
    eager = "eager"  # the same closed form, uncompiled: where no compiler runs (fused falls back to it)
    reference = "reference"  # F.local_response_norm through autograd: the check (and the code before issue 19)


class OptimizerName(str, Enum):
    sgd = "sgd"  # torch.optim.SGD
    paper = "paper"  # the printed update rule (paper_sgd.py)


class Source(str, Enum):
    generated = "generated"
    folder = "folder"
    archives = "archives"
    prepared = "prepared"
    cifar10 = "cifar10"


class AugmentOn(str, Enum):
    workers = "workers"  # the loader's workers cut the random crop and flip (uint8, a row copy)
    device = "device"  # the workers draw them and ship the row (a JPEG store: its bytes); the device decodes, cuts


class StoreFormat(str, Enum):
    jpeg = "jpeg"  # each 256x256 square JPEG-encoded once (data/jpeg.py): 1/8 of raw's bytes at quality 90
    raw = "raw"  # uint8 rows, 196 KiB an image: a crop is a row copy, no decode


class Chroma(str, Enum):
    full = "full"  # 4:4:4, colour at full resolution: the default (sample, quality 90: min PSNR 30 dB, not 24)
    half = "half"  # 4:2:0, colour at half resolution in both axes: ~20% fewer bytes (libjpeg's and FFCV's default)


class Normalize(str, Enum):
    channel = "channel"  # (x - mean) / std per channel, mean and std on [0, 1] pixels
    mean_image = "mean_image"  # section 2: x - the per-pixel mean image of the training set


class LightingMagnitude(str, Enum):
    eigenvalue = "eigenvalue"  # the printed formula on [0, 1] pixels
    sqrt_eigenvalue = "sqrt_eigenvalue"  # standard deviations instead of variances
