"""PCA lighting (paper section 4.1) and mean subtraction, on a whole batch on its device.

"To each training image, we add multiples of the found principal components, with magnitudes proportional to the
corresponding eigenvalues times a random variable drawn from a Gaussian with mean zero and standard deviation 0.1":

    I_xy += [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T,   a_i ~ N(0, 0.1), once per image each time it is used

p_i, l_i are the eigenvectors and eigenvalues of the 3x3 RGB covariance of the training set (prepare.py).
The printed formula adds an eigenvalue (intensity squared) to an intensity, so its strength depends on the pixel
scale the covariance was taken on. ``magnitude=eigenvalue`` (default) applies it literally with pixels in [0, 1],
as fb.resnet.torch does (its eigval 0.2175, 0.0188, 0.0045 are these; measured on the 200-image sample:
0.187, 0.016, 0.004): a typical shift of 0.1 x 0.19 = 0.02, about 5 grey levels. ``magnitude=sqrt_eigenvalue``
uses the standard deviation along each component instead (about 11 grey levels), for users who read l_i so.
"""

from __future__ import annotations

import torch

from alexnet_lit.config import LightingConfig, LightingMagnitude, Normalize


def lighting_shift(batch: int, eigval: torch.Tensor, eigvec: torch.Tensor, std: float,
                   magnitude: LightingMagnitude | str, generator: torch.Generator | None = None,
                   z: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image RGB shifts (batch, 3) on the [0, 1] scale; eigval/eigvec from the [0, 255] statistics. ``z``:
    the images' standard normal draws (batch, 3), made per sample by data/order.py; drawn here when absent."""
    lam = eigval / 255.0**2  # eigenvalues of the covariance of [0, 1] pixels
    lam = lam.clamp_min(0).sqrt() if magnitude == LightingMagnitude.sqrt_eigenvalue else lam
    if z is None:
        z = torch.randn(batch, 3, generator=generator, device=eigval.device, dtype=eigval.dtype)
    alpha = z.to(eigval.device, eigval.dtype) * std
    return (alpha * lam) @ eigvec.T  # sum_i alpha_i lam_i p_i, p_i the columns of eigvec


class Normalizer(torch.nn.Module):
    """uint8 batch -> the network's float input: pixel_max x (optional PCA lighting, then mean subtraction, on
    [0, 1] pixels). With ``pixel_max=255`` (the paper's scale) that is raw 8-bit values minus the mean.

    ``normalize=mean_image``: subtract the per-pixel mean image (the paper's "mean activity over the training set
    from each pixel"), cropped at the centre to the input size. ``normalize=channel``: (x - mean) / std per
    channel, mean and std on [0, 1] pixels (torchvision's numbers), times pixel_max. The lighting shift is defined
    on [0, 1] pixels and scales with them, so ``no_pca`` removes the same perturbation at either scale.
    ``stats``: ``mean_image`` (H, W, 3) and ``eigval``/``eigvec`` on the [0, 255] scale, as prepare writes them.
    """

    def __init__(self, normalize: Normalize | str, pixel_max: float, mean: list[float], std: list[float],
                 lighting: LightingConfig, stats: dict | None = None) -> None:
        super().__init__()
        self.normalize, self.pixel_max, self.lighting = Normalize(normalize), float(pixel_max), lighting
        self.mean_values, self.std_values = list(mean), list(std)
        scale = self.pixel_max / 255.0  # uint8 -> [0, pixel_max]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[:, None, None] * self.pixel_max,
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[:, None, None], persistent=False)
        self.scale = scale
        stats = stats or {}
        self.mean_image_255 = None  # as stats.npz has it, for the input contract (data/contract.py)
        if "mean_image" in stats:
            self.mean_image_255 = torch.as_tensor(stats["mean_image"], dtype=torch.float32)
            self.register_buffer("mean_image", self.mean_image_255.permute(2, 0, 1) * scale, persistent=False)
        if "eigval" in stats:
            self.register_buffer("eigval", torch.as_tensor(stats["eigval"], dtype=torch.float32), persistent=False)
            self.register_buffer("eigvec", torch.as_tensor(stats["eigvec"], dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, train: bool, lighting_z: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(torch.float32).mul_(self.scale)  # in place from here: each pass over the batch costs
        if train and self.lighting.enabled:
            shift = lighting_shift(x.shape[0], self.eigval, self.eigvec, self.lighting.std, self.lighting.magnitude,
                                   z=lighting_z)
            x.add_(shift.mul_(self.pixel_max).view(-1, 3, *([1] * (x.ndim - 2))))
        if self.normalize == Normalize.mean_image:
            return x.sub_(self.centre_mean(*x.shape[-2:]))
        return x.sub_(self.mean).div_(self.std)

    def centre_mean(self, h: int, w: int) -> torch.Tensor:
        """The central h x w of the mean image, cached, in channels_last memory like the batches."""
        key = (h, w, self.mean_image.device)
        if getattr(self, "_centre_key", None) != key:
            H, W = self.mean_image.shape[-2:]
            top, left = (H - h) // 2, (W - w) // 2
            crop = self.mean_image[:, top : top + h, left : left + w]
            self._centre, self._centre_key = crop.permute(1, 2, 0).contiguous().permute(2, 0, 1), key
        return self._centre
