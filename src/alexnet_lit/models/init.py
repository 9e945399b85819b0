"""Weight initialisation schemes for AlexNet.

- ``paper`` (section 5): every weight ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the fully-connected
  *hidden* layers (fc6, fc7), 0 elsewhere (conv1, conv3 and the output layer fc8), as the paper states ("the
  remaining layers with the constant 0"). This init is widely reported to leave deep runs stuck at ln(1000) for
  a long time; the stuck-at-chance callback watches for that. Feeding the paper's raw 0..255 pixels does not
  change it: the biases of 1 dominate the activations at either scale (measured: README, "Stuck at chance").
- ``caffe`` (bvlc_alexnet's train_val.prototxt): std 0.01, but 0.005 for fc6/fc7; biases 0.1 in conv2, conv4,
  conv5, fc6, fc7 and 0 in conv1, conv3, fc8.
- ``init_full_size_gain=true`` (``model.init_full_size_gain``) with ``paper`` or ``caffe``, for a narrower or
  smaller net (``width`` < 1, fewer ``fc_units``, small crops): each layer's std x sqrt(fan-in of that layer in the
  full-size net / its fan-in here), so every layer multiplies its input's spread by what the paper's layer did
  (0.01 is close to variance-preserving for fc6 with its 9,216 inputs, but shrinks the signal 12x for the 64
  inputs of a quarter-width 64 px net, and the run never leaves chance). Biases unchanged; equal to the plain
  scheme at full size. ``kaiming`` and ``lecun`` follow each layer's fan-in already: unchanged by it.
- ``kaiming``: He-normal weights (fan_in, for ReLU), zero biases; not from the paper, a modern baseline.
  The output layer fc8 gets N(0, 0.01) so the initial loss is ln(num_classes).
- ``lecun``: N(0, 1/fan-in) weights, zero biases, the output layer N(0, 0.01) as ``kaiming``: each tanh layer
  keeps its input's spread in the unit's near-linear range (LeCun et al. 1998). ``+experiment=tanh`` uses it:
  under the paper's init (biases 1, made for ReLUs: section 5) the tanh net stays at chance (experiments/ablations).
- ``cuda_convnet``: the CIFAR nets' own (models/cuda_convnet.py): N(0, initW of the layer file), biases 0.
"""

from __future__ import annotations

from torch import nn

from alexnet_lit.config import Init

# (weight std, bias) per layer name; a layer missing here (e.g. removed by the depth ablation) is skipped.
_PAPER = {"conv1": 0.0, "conv2": 1.0, "conv3": 0.0, "conv4": 1.0, "conv5": 1.0, "fc6": 1.0, "fc7": 1.0, "fc8": 0.0}
_CAFFE_BIAS = {"conv1": 0.0, "conv2": 0.1, "conv3": 0.0, "conv4": 0.1, "conv5": 0.1, "fc6": 0.1, "fc7": 0.1, "fc8": 0.0}
_CAFFE_STD = {"fc6": 0.005, "fc7": 0.005}


def describe_init(name: str, scheme: Init | str, output: str = "fc8", stds: dict[str, float] | None = None,
                  full_size_gain: bool = False) -> str:
    """How ``scheme`` initialises layer ``name``, as alexnet-describe prints it (``output``: the output layer;
    ``stds``: each layer's std for ``cuda_convnet``; ``full_size_gain``: model.init_full_size_gain)."""
    scheme = Init(scheme)
    gain = " x sqrt(full-size fan-in / fan-in)" if full_size_gain else ""
    if scheme == Init.cuda_convnet:
        return f"init N(0, {stds[name]:g}), bias 0"
    if scheme == Init.lecun:
        return "init N(0, 0.01), bias 0" if name == output else "init N(0, 1/fan-in), bias 0"
    if scheme == Init.paper:
        return f"init N(0, 0.01{gain}), bias {_PAPER[name]:g}"
    if scheme == Init.caffe:
        return f"init N(0, {_CAFFE_STD.get(name, 0.01):g}{gain}), bias {_CAFFE_BIAS[name]:g}"
    return "init N(0, 0.01), bias 0" if name == output else "init He-normal, bias 0"


def fan_in(layer: nn.Module) -> int:
    """Inputs per output unit: in/groups x kernel area, in_features, or a locally connected layer's patch."""
    return getattr(layer, "fan_in", None) or layer.weight[0].numel()


def init_weights(layers: dict[str, nn.Module], scheme: Init | str, full_size_fan_in: dict[str, int] | None = None,
                 output: str = "fc8", stds: dict[str, float] | None = None) -> None:
    """Initialise the named weighted layers in place. ``full_size_fan_in``: each layer's fan-in in the full-size
    net, to keep its gain (model.init_full_size_gain; paper and caffe); ``output``: the output layer's name;
    ``stds``: each layer's std for ``cuda_convnet``."""
    scheme = Init(scheme)
    for name, layer in layers.items():
        gain = (full_size_fan_in[name] / fan_in(layer)) ** 0.5 if full_size_fan_in else 1.0
        if scheme == Init.cuda_convnet:
            nn.init.normal_(layer.weight, 0.0, stds[name])
            nn.init.zeros_(layer.bias)
        elif scheme == Init.lecun and name != output:
            nn.init.normal_(layer.weight, 0.0, fan_in(layer) ** -0.5)
            nn.init.zeros_(layer.bias)
        elif scheme == Init.paper:
            nn.init.normal_(layer.weight, 0.0, 0.01 * gain)
            nn.init.constant_(layer.bias, _PAPER[name])
        elif scheme == Init.caffe:
            nn.init.normal_(layer.weight, 0.0, _CAFFE_STD.get(name, 0.01) * gain)
            nn.init.constant_(layer.bias, _CAFFE_BIAS[name])
        elif name == output:  # kaiming and lecun: logits near 0, the first loss ln(num_classes)
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)
        else:
            nn.init.normal_(layer.weight, 0.0, (2 / fan_in(layer)) ** 0.5)  # He-normal: kaiming_normal_(fan_in, relu)
            nn.init.zeros_(layer.bias)
