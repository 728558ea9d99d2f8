"""Localisation scores of maps [B, H, W] against defect masks [B, H, W], with two naive baselines.

Per image (each returns a [B] tensor; NaN where the score is undefined):
- `pointing_game`: does the map's maximum fall inside the mask dilated by `tolerance_px`
  (a disk)? With several pixels tied at the maximum, the share of them inside, so a flat map
  scores the dilated mask's area share rather than a lucky 1.
- `energy_in_mask`: share of the map's mass inside the mask.
- `pixel_auroc`, `pixel_average_precision`: the map as a per-pixel defect score.
- `patch_auroc`: map and mask average-pooled to the patch grid; a patch is positive when the mask
  covers at least `patch_positive_share` of it.
- `peak_share` (share of the map's mass in its top `PEAK_PIXELS` = 5 % of pixels; 0.05 = flat,
  1 = all on a few pixels) and `normalised_entropy` (entropy of map / sum over log(pixels);
  1 = flat): they need no mask and tell a peaked map from a near-uniform one that min-max
  normalisation would make look confident. Both are bounded, so a person can read them on a
  picture (the map panels print `peak_share`).
Mass-based scores (energy, peak share, entropy) use the map shifted to be non-negative: a map with
negative values has its minimum subtracted; a non-negative map is used as it is. An all-zero map
counts as uniform.

`score_maps` averages over images whose mask is non-empty (images without a defect have nothing
to point at, so they are skipped and counted in "n_images_skipped"); AUROC/AP skip also images
whose mask covers everything (no negative pixel). `score_with_baselines` adds a uniform-random map
(seeded) and a centre prior (isotropic Gaussian) scored in the same call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import to_2tuple

SCORE_NAMES = (
    "pointing",
    "energy",
    "pixel_auroc",
    "pixel_ap",
    "patch_auroc",
    "peak_share",
    "entropy",
)  # the keys of `image_scores`, in order
PEAK_PIXELS = 0.05  # `peak_share`: the share of a map's pixels that counts as its peak
PEAK_LABEL = f"top {PEAK_PIXELS:.0%}"  # `peak_share` as the map panels name it ("top 5%: 0.42")
RANDOM_BASELINE = "baseline_random"
CENTRE_BASELINE = "baseline_centre"


def _check(maps_bhw: torch.Tensor, masks_bhw: torch.Tensor) -> None:
    if maps_bhw.shape != masks_bhw.shape or maps_bhw.dim() != 3:
        raise ValueError(
            f"maps and masks must both be [B, H, W]; got {tuple(maps_bhw.shape)} and "
            f"{tuple(masks_bhw.shape)}"
        )


def non_negative(maps_bhw: torch.Tensor) -> torch.Tensor:
    """Maps shifted by their minimum where it is negative; non-negative maps are unchanged."""
    maps_bhw = maps_bhw.float()
    min_b11 = maps_bhw.amin(dim=(-2, -1), keepdim=True)
    return maps_bhw - min_b11.clamp(max=0.0)


def minmax_normalise(maps_bhw: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] (a constant map becomes all zeros)."""
    maps_bhw = maps_bhw.float()
    min_b11 = maps_bhw.amin(dim=(-2, -1), keepdim=True)
    range_b11 = maps_bhw.amax(dim=(-2, -1), keepdim=True) - min_b11
    return torch.where(
        range_b11 > 0,
        (maps_bhw - min_b11) / range_b11.clamp(min=torch.finfo(torch.float32).tiny),
        0.0,
    )


def dilate_masks(masks_bhw: torch.Tensor, tolerance_px: int) -> torch.Tensor:
    """Masks grown by a disk of radius `tolerance_px` pixels (Euclidean)."""
    if tolerance_px <= 0:
        return masks_bhw.bool()
    offsets = torch.arange(-tolerance_px, tolerance_px + 1, dtype=torch.float32)
    disk_kk = (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= tolerance_px**2
    kernel = disk_kk.float().to(masks_bhw.device)[None, None]
    grown_b1hw = F.conv2d(masks_bhw[:, None].float(), kernel, padding=tolerance_px)
    return grown_b1hw[:, 0] > 0.5


def pointing_game(
    maps_bhw: torch.Tensor,
    masks_bhw: torch.Tensor,
    tolerance_px: int = 15,
    dilated_bhw: torch.Tensor | None = None,
) -> torch.Tensor:
    """Share of the map's maximal pixels inside the mask dilated by `tolerance_px` [B]
    (`dilated_bhw`: that dilation, when the caller already has it)."""
    _check(maps_bhw, masks_bhw)
    maps_bhw = maps_bhw.float()
    is_max_bhw = maps_bhw == maps_bhw.amax(dim=(-2, -1), keepdim=True)
    if dilated_bhw is None:
        dilated_bhw = dilate_masks(masks_bhw, tolerance_px)
    hits_bhw = is_max_bhw & dilated_bhw
    return hits_bhw.sum(dim=(-2, -1)).float() / is_max_bhw.sum(dim=(-2, -1)).float()


def energy_in_mask(maps_bhw: torch.Tensor, masks_bhw: torch.Tensor) -> torch.Tensor:
    """Share of the (non-negative) map's mass inside the mask [B]."""
    _check(maps_bhw, masks_bhw)
    mass_bhw = non_negative(maps_bhw)
    total_b = mass_bhw.sum(dim=(-2, -1))
    mass_bhw = torch.where(total_b[:, None, None] > 0, mass_bhw, 1.0)  # all-zero: uniform
    return (mass_bhw * masks_bhw.float()).sum(dim=(-2, -1)) / mass_bhw.sum(dim=(-2, -1))


def _undefined_where_one_class(values_b: torch.Tensor, labels_bp: torch.Tensor) -> torch.Tensor:
    num_pos_b = labels_bp.sum(dim=-1)
    defined_b = (num_pos_b > 0) & (num_pos_b < labels_bp.shape[-1])
    return torch.where(defined_b, values_b, math.nan).float()


def batched_auroc(scores_bp: torch.Tensor, labels_bp: torch.Tensor) -> torch.Tensor:
    """AUROC of each row [B] (Mann-Whitney U, ties count half; equals torchmetrics'
    `binary_auroc` per row), vectorised over rows; NaN for a row with one class only."""
    scores_bp, labels_bp = scores_bp.float(), labels_bp.bool()
    sorted_bp = scores_bp.sort(dim=-1).values
    below_bp = torch.searchsorted(sorted_bp, scores_bp, side="left")
    up_to_bp = torch.searchsorted(sorted_bp, scores_bp, side="right")
    ranks_bp = (below_bp + up_to_bp + 1).double() / 2  # 1-based ranks, ties averaged
    num_pos_b = labels_bp.sum(dim=-1).double()
    num_neg_b = labels_bp.shape[-1] - num_pos_b
    rank_sum_b = (ranks_bp * labels_bp).sum(dim=-1)
    auroc_b = (rank_sum_b - num_pos_b * (num_pos_b + 1) / 2) / (num_pos_b * num_neg_b)
    return _undefined_where_one_class(auroc_b, labels_bp)


def batched_average_precision(scores_bp: torch.Tensor, labels_bp: torch.Tensor) -> torch.Tensor:
    """Average precision of each row [B] (mean over positives of the precision at their score;
    equals torchmetrics' `binary_average_precision`), vectorised; NaN for a one-class row."""
    scores_bp, labels_bp = scores_bp.float(), labels_bp.bool()
    num_pixels = labels_bp.shape[-1]
    sorted_bp = scores_bp.sort(dim=-1).values
    at_least_bp = num_pixels - torch.searchsorted(sorted_bp, scores_bp, side="left")
    positives_bp = torch.where(labels_bp, scores_bp, -math.inf).sort(dim=-1).values
    pos_at_least_bp = num_pixels - torch.searchsorted(positives_bp, scores_bp, side="left")
    precision_bp = pos_at_least_bp.double() / at_least_bp.double()
    ap_b = (precision_bp * labels_bp).sum(dim=-1) / labels_bp.sum(dim=-1).clamp(min=1)
    return _undefined_where_one_class(ap_b, labels_bp)


def pixel_auroc(maps_bhw: torch.Tensor, masks_bhw: torch.Tensor) -> torch.Tensor:
    """AUROC of the map as a per-pixel score for the mask, per image [B]."""
    _check(maps_bhw, masks_bhw)
    return batched_auroc(minmax_normalise(maps_bhw).flatten(1), masks_bhw.flatten(1))


def pixel_average_precision(maps_bhw: torch.Tensor, masks_bhw: torch.Tensor) -> torch.Tensor:
    """Average precision of the map as a per-pixel score for the mask, per image [B]."""
    _check(maps_bhw, masks_bhw)
    return batched_average_precision(minmax_normalise(maps_bhw).flatten(1), masks_bhw.flatten(1))


def patch_auroc(
    maps_bhw: torch.Tensor,
    masks_bhw: torch.Tensor,
    patch_size: int | tuple[int, int],
    patch_positive_share: float = 0.1,
) -> torch.Tensor:
    """AUROC on the patch grid: pooled map vs patches the mask covers >= the given share [B]."""
    _check(maps_bhw, masks_bhw)
    kernel_hw = to_2tuple(patch_size)
    grid_map_bhw = F.avg_pool2d(minmax_normalise(maps_bhw)[:, None], kernel_hw)[:, 0]
    coverage_bhw = F.avg_pool2d(masks_bhw[:, None].float(), kernel_hw)[:, 0]
    positive_bhw = coverage_bhw >= patch_positive_share
    return batched_auroc(minmax_normalise(grid_map_bhw).flatten(1), positive_bhw.flatten(1))


def peak_share(maps_bhw: torch.Tensor, peak_pixels: float = PEAK_PIXELS) -> torch.Tensor:
    """Share of the (non-negative) map's mass in its top `peak_pixels` of pixels [B], at least
    one pixel: `peak_pixels` (rounded up to whole pixels) for a flat or all-zero map, 1 when the
    mass sits on that many pixels or fewer."""
    mass_bp = non_negative(maps_bhw).flatten(1)
    total_b = mass_bp.sum(dim=-1)
    mass_bp = torch.where(total_b[:, None] > 0, mass_bp, 1.0)  # all-zero: uniform
    num_peak = max(1, math.ceil(peak_pixels * mass_bp.shape[-1]))
    return mass_bp.topk(num_peak, dim=-1).values.sum(dim=-1) / mass_bp.sum(dim=-1)


def normalised_entropy(maps_bhw: torch.Tensor) -> torch.Tensor:
    """Entropy of map / sum divided by log(number of pixels) [B]: 1 = flat, 0 = one pixel."""
    mass_bhw = non_negative(maps_bhw)
    num_pixels = mass_bhw.shape[-1] * mass_bhw.shape[-2]
    total_b = mass_bhw.sum(dim=(-2, -1))
    mass_bhw = torch.where(total_b[:, None, None] > 0, mass_bhw, 1.0)
    p_bn = mass_bhw.flatten(1)
    p_bn = p_bn / p_bn.sum(dim=-1, keepdim=True)
    entropy_b = -torch.special.xlogy(p_bn, p_bn).sum(dim=-1)
    return entropy_b / math.log(num_pixels)


def image_scores(
    maps_bhw: torch.Tensor,
    masks_bhw: torch.Tensor,
    patch_size: int | tuple[int, int],
    tolerance_px: int = 15,
    patch_positive_share: float = 0.1,
    dilated_bhw: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every score of each image, {name: [B]} (images with an empty mask get NaN or 0);
    `dilated_bhw`: `dilate_masks(masks_bhw, tolerance_px)` when scoring several maps."""
    _check(maps_bhw, masks_bhw)
    maps_bhw, masks_bhw = maps_bhw.float(), masks_bhw.bool()
    return {
        "pointing": pointing_game(maps_bhw, masks_bhw, tolerance_px, dilated_bhw),
        "energy": energy_in_mask(maps_bhw, masks_bhw),
        "pixel_auroc": pixel_auroc(maps_bhw, masks_bhw),
        "pixel_ap": pixel_average_precision(maps_bhw, masks_bhw),
        "patch_auroc": patch_auroc(maps_bhw, masks_bhw, patch_size, patch_positive_share),
        "peak_share": peak_share(maps_bhw),
        "entropy": normalised_entropy(maps_bhw),
    }


def score_maps(
    maps_bhw: torch.Tensor,
    masks_bhw: torch.Tensor,
    patch_size: int | tuple[int, int],
    tolerance_px: int = 15,
    patch_positive_share: float = 0.1,
) -> dict[str, float]:
    """Every score, averaged over images with a non-empty mask (NaN when there is none)."""
    _check(maps_bhw, masks_bhw)
    masks_bhw = masks_bhw.detach().bool().cpu()
    has_defect_b = masks_bhw.flatten(1).any(dim=1)
    per_image = image_scores(
        maps_bhw.detach().cpu()[has_defect_b],
        masks_bhw[has_defect_b],
        patch_size,
        tolerance_px,
        patch_positive_share,
    )
    scores = {name: float(values.nanmean()) for name, values in per_image.items()}
    scores["n_images"] = float(has_defect_b.sum())
    scores["n_images_skipped"] = float((~has_defect_b).sum())
    return scores


def random_maps(
    batch: int, image_hw: tuple[int, int], seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Uniform-random maps [B, H, W] from a seeded generator (reproducible baseline)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *image_hw), generator=generator).to(device)


def centre_prior_maps(
    batch: int,
    image_hw: tuple[int, int],
    sigma_frac: float = 0.25,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Isotropic Gaussian centred in the image [B, H, W]; sigma = sigma_frac * min(H, W) pixels."""
    height, width = image_hw
    sigma_px = sigma_frac * min(height, width)
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    dist2_hw = ys[:, None] ** 2 + xs[None, :] ** 2
    prior_hw = torch.exp(-dist2_hw / (2 * sigma_px**2))
    return prior_hw.expand(batch, height, width).clone().to(device)


def with_baselines(
    maps_by_kind: Mapping[str, torch.Tensor],
    masks_bhw: torch.Tensor,
    seed: int = 0,
    centre_sigma_frac: float = 0.25,
) -> dict[str, torch.Tensor]:
    """`maps_by_kind` plus a "baseline_random" (seeded) and a "baseline_centre" map per mask."""
    clashes = {RANDOM_BASELINE, CENTRE_BASELINE} & set(maps_by_kind)
    if clashes:
        raise ValueError(f"map kinds {sorted(clashes)} clash with the baseline names")
    batch, height, width = masks_bhw.shape
    image_hw = (int(height), int(width))
    return dict(maps_by_kind) | {
        RANDOM_BASELINE: random_maps(batch, image_hw, seed),
        CENTRE_BASELINE: centre_prior_maps(batch, image_hw, centre_sigma_frac),
    }


def score_with_baselines(
    maps_by_kind: Mapping[str, torch.Tensor],
    masks_bhw: torch.Tensor,
    patch_size: int | tuple[int, int],
    tolerance_px: int = 15,
    patch_positive_share: float = 0.1,
    seed: int = 0,
    centre_sigma_frac: float = 0.25,
) -> dict[str, dict[str, float]]:
    """`score_maps` for each kind, plus "baseline_random" and "baseline_centre" on the same masks."""
    all_maps = with_baselines(maps_by_kind, masks_bhw, seed, centre_sigma_frac)
    return {
        kind: score_maps(
            maps_bhw,
            masks_bhw,
            patch_size,
            tolerance_px=tolerance_px,
            patch_positive_share=patch_positive_share,
        )
        for kind, maps_bhw in all_maps.items()
    }


AUPRO_MAX_FPR = 0.3  # the field's standard limit of the per-region overlap curve


def aupro(maps_bhw: torch.Tensor, masks_bhw: torch.Tensor, max_fpr: float = AUPRO_MAX_FPR) -> float:
    """Area under the per-region overlap (PRO) curve up to `max_fpr` false-positive rate,
    divided by `max_fpr` (1 = every defect region fully found before any false alarm).

    Over every threshold t (the map's distinct values): PRO = the mean, over the connected
    regions of all masks (8-connected, `data.regions`), of the share of the region at or
    above t; FPR = the share of the masks' background pixels at or above t. The curve starts
    at (0, 0) and is integrated with trapezoids, its value at `max_fpr` interpolated (MVTec AD,
    Bergmann et al. 2021). NaN without a region or without a background pixel.
    """
    from anomaly_vit.data.regions import label_regions

    _check(maps_bhw, masks_bhw)
    scores = maps_bhw.detach().float().cpu().numpy().ravel().astype(np.float64)
    masks = masks_bhw.detach().bool().cpu().numpy()
    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for index, mask_hw in enumerate(masks):
        labels, count = label_regions(mask_hw)
        if count:
            sizes = np.bincount(labels.ravel(), minlength=count + 1).astype(np.float64)
            weights[index] = np.where(labels > 0, 1.0 / sizes[labels], 0.0)
            n_regions += count
    negative = ~masks.ravel()
    if n_regions == 0 or not negative.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    last_of_ties = np.flatnonzero(np.diff(scores[order], append=-np.inf) != 0)
    fpr = np.concatenate([[0.0], np.cumsum(negative[order])[last_of_ties] / negative.sum()])
    pro = np.concatenate([[0.0], np.cumsum(weights.ravel()[order])[last_of_ties] / n_regions])
    inside = fpr <= max_fpr
    xs, ys = fpr[inside], pro[inside]
    if xs[-1] < max_fpr and inside.sum() < len(fpr):
        nxt = int(np.argmax(~inside))
        share = (max_fpr - fpr[nxt - 1]) / (fpr[nxt] - fpr[nxt - 1])
        xs = np.append(xs, max_fpr)
        ys = np.append(ys, pro[nxt - 1] + share * (pro[nxt] - pro[nxt - 1]))
    return float(np.trapezoid(ys, xs) / max_fpr)
