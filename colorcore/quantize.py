"""ab quantisation and decoding: the 313-bin gamut, soft encoding, class rebalancing, decoders, palettes.

Shapes follow ``(*, C, H, W)``: ab maps are ``(*, 2, H, W)`` in physical Lab units, logits and
probabilities ``(*, Q, H, W)``, and bin centres ``(Q, 2)`` (a, b). Everything here works for any set of
centres: Zhang's 313-bin gamut (:func:`gamut_centers`) or a k-means palette (:func:`load_palette`).

Nearest-centre searches run over blocks of pixels, so no ``(pixels, Q)`` distance matrix larger than a
few megabytes is ever held; :func:`soft_encode` allocates its ``(*, Q, H, W)`` output and little else.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from colorcore.color import rgb_to_lab
from colorcore.errors import ConfigError

ZHANG_TEMPERATURE = 0.38
MEDIAN_ITERATIONS = 16  # Weiszfeld steps: 0.06 ab units from the converged median on average (hold-out)
PALETTE_BINS = (16, 24, 32)  # the palettes shipped in colorcore/data/palette{bins}.json
PALETTE_FORMAT = "colorcore-palette/1"
DATA_DIR = Path(__file__).resolve().parent / "data"

_BLOCK_PIXELS = 1 << 14  # pixels per block in nearest-centre searches: 16k x 313 floats = 20 MB


# --------------------------------------------------------------------------------------------------------
# The 313-bin gamut


def _srgb_cube_surface(steps: int) -> Tensor:
    """``(6, 3, steps, steps)`` float64 sRGB colours sampled on the six faces of the RGB cube.

    The ab projection of the sRGB solid is bounded by the projection of its surface, so distances from
    outside points to the gamut's ab footprint only need the faces (the corners are sampled exactly).
    """
    u = torch.linspace(0, 1, steps, dtype=torch.float64)
    uu, vv = torch.meshgrid(u, u, indexing="ij")
    faces = []
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        for value in (0.0, 1.0):
            face = [uu, uu, uu]
            face[channel] = torch.full_like(uu, value)
            face[others[0]], face[others[1]] = uu, vv
            faces.append(torch.stack(face))
    return torch.stack(faces)


# Zhang et al.'s published gamut, ``resources/pts_in_hull.npy`` of richzhang/colorization: for each a on the
# 10-unit grid its in-gamut b values form one run, so the 313 centres are stored as a -> (first b, last b).
PUBLISHED_GAMUT_B_RUNS: dict[int, tuple[int, int]] = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100), -40: (-40, 100),
    -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100), 10: (-80, 90), 20: (-80, 90),
    30: (-90, 90), 40: (-100, 90), 50: (-100, 80), 60: (-110, 80), 70: (-110, 80), 80: (-110, 70),
    90: (-110, 70), 100: (-90, 0),
}
GAMUT_GRID = 10


def gamut_centers() -> Tensor:
    """Zhang et al.'s 313 ab bin centres, exactly as published (``pts_in_hull.npy``), in its order.

    a-major order (a ascending, then b ascending), from (-90, 50), (-90, 60), ... to (100, 0); spacing
    10 Lab units. The published ECCV16 and SIGGRAPH17 checkpoints index their 313 classes in this order.

    Returns a fresh ``(313, 2)`` float32 tensor (a, b).
    """
    return _published_gamut().clone()


@lru_cache(maxsize=1)
def _published_gamut() -> Tensor:
    pairs = [(a, b) for a, (first, last) in sorted(PUBLISHED_GAMUT_B_RUNS.items())
             for b in range(first, last + 1, GAMUT_GRID)]
    return torch.tensor(pairs, dtype=torch.float32)


@lru_cache(maxsize=4)
def _derived_gamut(grid: int, limit: int, radius: float) -> Tensor:
    axis = torch.arange(-limit, limit + 1, grid, dtype=torch.float64)
    a, b = torch.meshgrid(axis, axis, indexing="ij")  # a-major order, as Zhang's pts_in_hull
    grid_ab = torch.stack((a.flatten(), b.flatten()), dim=1)
    surface_ab = rgb_to_lab(_srgb_cube_surface(65))[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)
    dist = torch.full((grid_ab.shape[0],), math.inf, dtype=torch.float64)
    for chunk in surface_ab.split(8192):
        dist = torch.minimum(dist, torch.cdist(grid_ab, chunk).amin(dim=1))
    return grid_ab[dist <= radius + 1e-9].float()


def derived_gamut_centers(grid: int = 10, limit: int = 110, radius: float | None = None) -> Tensor:
    """In-gamut ab bins of any grid by a geometric rule (the published 313 are :func:`gamut_centers`).

    Rule: a bin of the ``grid``-spaced lattice over ``[-limit, limit]^2`` is kept when its centre lies within
    ``radius`` (default one bin diagonal, ``grid * sqrt(2)``) of the ab footprint of the sRGB gamut (all L),
    sampled on the RGB cube's faces (65 x 65 per face, corners exact). With the defaults it gives 313 bins
    in the published order, but three edge bins differ from the published list: it keeps (-60, 100),
    (80, 80) and (110, -60) where Zhang's has (40, 90), (100, -90) and (100, 0). The bundled
    ``eccv16-small`` and ``eccv16-w25`` weights were trained on these derived bins; like any eccv16
    checkpoint they carry their own centres (``model_out``), so they decode correctly either way.

    Returns a fresh ``(Q, 2)`` float32 tensor (the computation is cached).
    """
    if grid <= 0 or limit <= 0:
        raise ConfigError(f"grid and limit must be positive, got grid={grid}, limit={limit}")
    radius = grid * math.sqrt(2) if radius is None else radius
    return _derived_gamut(int(grid), int(limit), float(radius)).clone()


# --------------------------------------------------------------------------------------------------------
# Validation helpers


def _check_centers(centers: Tensor) -> None:
    if not isinstance(centers, Tensor) or centers.dim() != 2 or centers.shape[1] != 2 or centers.shape[0] < 1:
        shape = tuple(centers.shape) if isinstance(centers, Tensor) else type(centers).__name__
        raise ConfigError(f"bin centres must be a (Q, 2) tensor with Q >= 1, got {shape}")


def _check_ab(ab: Tensor) -> None:
    if not isinstance(ab, Tensor) or ab.dim() < 3 or ab.shape[-3] != 2:
        shape = tuple(ab.shape) if isinstance(ab, Tensor) else type(ab).__name__
        raise ConfigError(f"ab must be a (*, 2, H, W) tensor, got {shape}")


def _validate(logits: Tensor, centers: Tensor) -> None:
    _check_centers(centers)
    if logits.dim() < 3 or logits.shape[-3] != centers.shape[0]:
        raise ConfigError(f"logits must be (*, {centers.shape[0]}, H, W), got {tuple(logits.shape)}")


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
    if not math.isfinite(temperature):
        raise ConfigError(f"temperature must be finite, got {temperature!r}")
    return float(temperature)


def _check_k(k: int, q: int, name: str = "top_k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= q:
        raise ConfigError(f"{name} must be an integer in [1, {q}], got {k!r}")
    return int(k)


def _check_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < math.inf:
        raise ConfigError(f"sigma must be a finite number > 0, got {sigma!r}")
    return float(sigma)


def _compute_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


# --------------------------------------------------------------------------------------------------------
# Assignment and soft encoding


def _flat_pixels(ab: Tensor) -> Tensor:
    """``(*, 2, H, W)`` -> ``(N, 2)`` in a float compute dtype, N = prod(*) * H * W."""
    return ab.movedim(-3, -1).reshape(-1, 2).to(_compute_dtype(ab))


def _sq_dist(pixels: Tensor, centers: Tensor, center_norm: Tensor) -> Tensor:
    """Squared distances ``(n, Q)`` via ``|x|^2 - 2 x.c + |c|^2`` (one GEMM), clamped at 0."""
    d = torch.addmm(center_norm[None], pixels, centers.T, alpha=-2.0)
    return d.add_(pixels.square().sum(dim=1, keepdim=True)).clamp_min_(0)


def _nearest_k(ab: Tensor, centers: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Squared distances ``(N, k)`` (ascending) and indices ``(N, k)`` of the k nearest centres per pixel."""
    pixels = _flat_pixels(ab)
    c = centers.to(device=pixels.device, dtype=pixels.dtype)
    c_norm = c.square().sum(dim=1)
    dists, idxs = [], []
    for block in pixels.split(_BLOCK_PIXELS):
        d = _sq_dist(block, c, c_norm)
        if k == 1:  # min is ~10x faster than topk
            d, i = d.min(dim=1, keepdim=True)
        else:
            d, i = d.topk(k, dim=1, largest=False)  # sorted ascending
        dists.append(d)
        idxs.append(i)
    if not dists:
        empty = pixels.new_zeros((0, k))
        return empty, empty.long()
    return torch.cat(dists), torch.cat(idxs)


def hard_assign(ab: Tensor, centers: Tensor) -> Tensor:
    """Index of the nearest centre per pixel: ``ab (*, 2, H, W)``, ``centers (Q, 2)`` -> ``(*, H, W)``."""
    _check_ab(ab)
    _check_centers(centers)
    with torch.no_grad():
        _, idx = _nearest_k(ab, centers, 1)
    return idx[:, 0].reshape(*ab.shape[:-3], *ab.shape[-2:])


def soft_encode_sparse(ab: Tensor, centers: Tensor, k: int = 5, sigma: float = 5.0) -> tuple[Tensor, Tensor]:
    """:func:`soft_encode` without the dense ``Q`` axis: the ``k`` nearest bins and their weights.

    Args:
        ab: ``(B, 2, H, W)`` physical ab.
        centers: ``(Q, 2)`` bin centres.

    Returns:
        ``(idx, weights)``, both ``(B, k, H, W)``: bin indices (nearest first, int64) and Gaussian weights
        summing to 1 over ``k``. A loss can gather ``k`` log-probabilities instead of ``Q``.
    """
    _check_ab(ab)
    _check_centers(centers)
    k = _check_k(k, centers.shape[0], "k")
    sigma = _check_sigma(sigma)
    b, _, h, w = ab.shape
    with torch.no_grad():
        d2, idx = _nearest_k(ab, centers, k)
        weights = torch.exp((d2[:, :1] - d2) / (2 * sigma**2))  # nearest bin gets exp(0) = 1
        weights /= weights.sum(dim=1, keepdim=True)
    # (N, k) with N = b * h * w -> (b, k, h, w)
    return (idx.view(b, h, w, k).permute(0, 3, 1, 2).contiguous(),
            weights.view(b, h, w, k).permute(0, 3, 1, 2).contiguous())


def soft_encode(ab: Tensor, centers: Tensor, k: int = 5, sigma: float = 5.0) -> Tensor:
    """Zhang et al.'s soft encoding: Gaussian weights over the ``k`` nearest bins, summing to 1.

    Args:
        ab: ``(*, 2, H, W)`` physical ab.
        centers: ``(Q, 2)`` bin centres.
        k: number of nearest bins that get weight (1 gives one-hot).
        sigma: Gaussian width in ab units.

    Returns:
        ``(*, Q, H, W)`` non-negative weights (float32, or float64 for float64 input), zero outside each
        pixel's k nearest bins. Not differentiable (a training target). The weights are computed relative
        to the nearest bin, so pixels far outside the gamut still get a valid distribution.
    """
    _check_ab(ab)
    _check_centers(centers)
    q = centers.shape[0]
    lead, (h, w) = ab.shape[:-3], ab.shape[-2:]
    batch = math.prod(lead)
    idx, weights = soft_encode_sparse(ab.reshape(batch, 2, h, w), centers, k, sigma)
    out = torch.zeros((batch, q, h, w), dtype=weights.dtype, device=weights.device)
    out.scatter_(1, idx, weights)
    return out.view(*lead, q, h, w)


def _default_sigma(centers: Tensor) -> float:
    """Half the median nearest-neighbour spacing of the centres (Zhang: sigma 5 on a 10-unit grid)."""
    if centers.shape[0] < 2:
        return 5.0
    d = torch.cdist(centers.double(), centers.double())
    d.fill_diagonal_(math.inf)
    spacing = float(d.amin(dim=1).median())
    return max(spacing / 2, 1e-3)


def soft_assign(ab: Tensor, centers: Tensor, k: int = 3, sigma: float | None = None) -> Tensor:
    """Soft assignment to a palette: :func:`soft_encode` with ``k`` clipped to Q and a spacing-aware sigma.

    ``sigma=None`` uses half the median nearest-neighbour distance between the centres, which is
    Zhang's sigma 5 for the 10-unit grid and scales to sparse k-means palettes. Returns ``(*, Q, H, W)``.
    """
    _check_centers(centers)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    k = min(int(k), centers.shape[0])
    return soft_encode(ab, centers, k=k, sigma=_default_sigma(centers) if sigma is None else sigma)


# --------------------------------------------------------------------------------------------------------
# Priors and class rebalancing


def empirical_bin_distribution(ab: Tensor | Iterable[Tensor], centers: Tensor) -> Tensor:
    """Hard-assignment histogram of ab pixels over the bins, normalised to sum 1.

    Args:
        ab: one ``(*, 2, H, W)`` tensor or an iterable of them (e.g. one per image; any H, W).
        centers: ``(Q, 2)`` bin centres.

    Returns:
        ``(Q,)`` float64 probabilities.
    """
    _check_centers(centers)
    counts = torch.zeros(centers.shape[0], dtype=torch.float64)
    for item in [ab] if isinstance(ab, Tensor) else ab:
        idx = hard_assign(item, centers)
        counts += torch.bincount(idx.flatten().cpu(), minlength=centers.shape[0]).double()
    total = counts.sum()
    if total <= 0:
        raise ConfigError("no ab pixels to build a bin distribution from")
    return counts / total


def _check_distribution(p: Tensor) -> Tensor:
    if not isinstance(p, Tensor) or p.dim() != 1 or p.numel() < 1:
        raise ConfigError(f"a bin distribution must be a (Q,) tensor, got {getattr(p, 'shape', type(p))}")
    p = p.detach().double()
    if not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ConfigError("a bin distribution must be finite, non-negative and not all zero")
    return p / p.sum()


def smooth_distribution(p: Tensor, centers: Tensor, sigma: float = 5.0) -> Tensor:
    """Gaussian smoothing of a bin distribution over ab space (Zhang's p-tilde).

    Each bin's mass is spread over the bins with weights ``exp(-|c_i - c_j|^2 / 2 sigma^2)`` normalised
    per source bin, so no mass leaves the set of centres. Returns ``(Q,)`` float64 summing to 1.
    """
    _check_centers(centers)
    p = _check_distribution(p)
    if p.numel() != centers.shape[0]:
        raise ConfigError(f"distribution has {p.numel()} bins but there are {centers.shape[0]} centres")
    sigma = _check_sigma(sigma)
    c = centers.detach().double().cpu()
    kernel = torch.exp(-torch.cdist(c, c).square() / (2 * sigma**2))  # (target, source)
    kernel /= kernel.sum(dim=0, keepdim=True)
    smoothed = kernel @ p.cpu()
    return smoothed / smoothed.sum()


def rebalance_weights(
    p: Tensor, lam: float = 0.5, sigma: float = 5.0, centers: Tensor | None = None
) -> Tensor:
    """Zhang et al.'s class-rebalancing weights ``w ∝ ((1 - lam) p~ + lam / Q)^-1`` with ``sum(p~ w) = 1``.

    Args:
        p: ``(Q,)`` empirical bin distribution (e.g. :func:`empirical_bin_distribution`).
        lam: mixing weight of the uniform distribution, in [0, 1] (Zhang: 0.5).
        sigma: Gaussian smoothing width in ab units; 0 uses ``p`` unsmoothed.
        centers: ``(Q, 2)`` bin centres for the smoothing; None means :func:`gamut_centers`.

    Returns:
        ``(Q,)`` float32 weights.
    """
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not 0 <= lam <= 1:
        raise ConfigError(f"lam must be a number in [0, 1], got {lam!r}")
    p = _check_distribution(p)
    if sigma == 0:
        p_tilde = p
    else:
        p_tilde = smooth_distribution(p, gamut_centers() if centers is None else centers, sigma)
    q = p_tilde.numel()
    mix = (1 - lam) * p_tilde + lam / q
    if (mix <= 0).any():
        raise ConfigError("lam = 0 needs every bin to have mass; use lam > 0")
    w = 1 / mix
    w /= (p_tilde * w).sum()
    return w.float()


# --------------------------------------------------------------------------------------------------------
# k-means palettes


def fit_palette(ab_samples: Tensor | np.ndarray, bins: int, seed: int = 0) -> Tensor:
    """k-means (scikit-learn) palette of ``bins`` ab colours from ``ab_samples (N, 2)``.

    Centres are sorted by a, then b, so the result is deterministic for a given seed and sample.
    Returns ``(bins, 2)`` float32.
    """
    from sklearn.cluster import KMeans  # deferred: scikit-learn is slow to import and only needed here

    if isinstance(ab_samples, Tensor):
        ab_samples = ab_samples.detach().cpu().numpy()
    x = np.asarray(ab_samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ConfigError(f"ab samples must be an (N, 2) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("ab samples contain NaN or infinite values")
    bins = _check_k(bins, max(len(x), 1), "bins")
    if len(np.unique(x, axis=0)) < bins:
        raise ConfigError(f"need at least {bins} distinct ab samples for {bins} bins")
    km = KMeans(n_clusters=bins, n_init=4, random_state=seed).fit(x)
    centers = km.cluster_centers_
    centers = centers[np.lexsort((centers[:, 1], centers[:, 0]))]
    return torch.from_numpy(centers).float()


def palette_path(bins: int) -> Path:
    """``colorcore/data/palette{bins}.json``."""
    return DATA_DIR / f"palette{bins}.json"


def save_palette(path: Path, centers: Tensor, source: dict[str, object] | None = None) -> None:
    """Write ``centers (bins, 2)`` as a palette JSON file (``format``, ``bins``, ``centers``, ``source``)."""
    _check_centers(centers)
    rows = ",\n".join(f"  [{a:.4f}, {b:.4f}]" for a, b in centers.tolist())  # one (a, b) pair per line
    text = (f'{{\n "format": {json.dumps(PALETTE_FORMAT)},\n "bins": {int(centers.shape[0])},\n'
            f' "centers": [\n{rows}\n ],\n "source": {json.dumps(source or {})}\n}}\n')
    json.loads(text)  # guard the hand-made layout
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@lru_cache(maxsize=8)
def _load_palette(bins: int) -> Tensor:
    path = palette_path(bins)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        centers = torch.tensor(doc["centers"], dtype=torch.float32)
    except FileNotFoundError as exc:
        raise ConfigError(f"palette file {path} is missing; run python -m training.palette") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"palette file {path} is unreadable: {exc}") from exc
    if doc.get("format") != PALETTE_FORMAT or centers.shape != (bins, 2) or not torch.isfinite(centers).all():
        raise ConfigError(f"palette file {path} does not hold {bins} finite (a, b) centres")
    return centers


def load_palette(bins: int) -> Tensor:
    """The shipped k-means palette with ``bins`` colours (16, 24 or 32) as a fresh ``(bins, 2)`` tensor."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or int(bins) not in PALETTE_BINS:
        raise ConfigError(f"no palette with {bins!r} colours; available: {', '.join(map(str, PALETTE_BINS))}")
    return _load_palette(int(bins)).clone()


# --------------------------------------------------------------------------------------------------------
# Decoders


def _expect(probs: Tensor, centers: Tensor) -> Tensor:
    """Probability-weighted mean of the centres: ``(*, Q, H, W)`` -> ``(*, 2, H, W)``."""
    return torch.einsum("...qhw,qc->...chw", probs, centers.to(dtype=probs.dtype, device=probs.device))


def decode_annealed_mean(logits: Tensor, centers: Tensor, temperature: float = ZHANG_TEMPERATURE) -> Tensor:
    """Annealed mean: softmax(logits / T) weighted mean of bin centres, ``(*, Q, H, W)`` -> ``(*, 2, H, W)``.

    T = 1 gives the plain mean of the predicted distribution; T -> 0 approaches the mode. The maximum is
    subtracted before dividing by T, so tiny temperatures do not overflow.
    """
    _validate(logits, centers)
    t = _check_temperature(temperature)
    x = logits.to(_compute_dtype(logits))
    probs = torch.softmax((x - x.amax(dim=-3, keepdim=True)) / t, dim=-3)
    return _expect(probs, centers).to(logits.dtype)


def decode_median(
    logits: Tensor, centers: Tensor, bin_weights: Tensor | None = None, iterations: int = MEDIAN_ITERATIONS
) -> Tensor:
    """Geometric median of the predicted ab distribution, ``(*, Q, H, W)`` -> ``(*, 2, H, W)``.

    The median is the ab with the least expected Euclidean distance to the true colour, which is what
    AuC integrates; the mean (T = 1) minimises the squared distance and is pulled towards far bins.

    Args:
        logits: ``(*, Q, H, W)`` class scores.
        centers: ``(Q, 2)`` bin centres in ab units.
        bin_weights: ``(Q,)`` rebalancing weights the head was trained with, or None. A cross-entropy
            weighted by the true bin's weight fits ``p * w`` (up to scale), so the photo's own distribution
            is ``softmax(logits) / w``, renormalised.
        iterations: Weiszfeld steps from the mean; distances are clamped at 1 ab unit so a median that
            lands on a bin centre stays finite.
    """
    _validate(logits, centers)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ConfigError(f"iterations must be an integer >= 0, got {iterations!r}")
    x = logits.to(_compute_dtype(logits))
    c = centers.to(dtype=x.dtype, device=x.device)
    if bin_weights is None:
        inverse = torch.ones(c.shape[0], dtype=x.dtype, device=x.device)
    else:
        if bin_weights.shape != (c.shape[0],) or not bool(torch.isfinite(bin_weights).all()) \
                or bool((bin_weights <= 0).any()):
            raise ConfigError(f"bin_weights must be {c.shape[0]} positive finite numbers")
        inverse = 1 / bin_weights.to(dtype=x.dtype, device=x.device)
    q, h, w = x.shape[-3:]
    flat = x.reshape(-1, q, h * w)
    out = torch.empty((flat.shape[0], 2, h * w), dtype=x.dtype, device=x.device)
    for m in range(flat.shape[0]):
        # Pixel blocks keep the (Q, block) temporaries in cache: about 12x faster on a 128 x 128 map.
        for lo in range(0, h * w, _MEDIAN_BLOCK):
            out[m, :, lo:lo + _MEDIAN_BLOCK] = _median_block(flat[m, :, lo:lo + _MEDIAN_BLOCK], c, inverse,
                                                              iterations)
    return out.reshape(*x.shape[:-3], 2, h, w).to(logits.dtype)


_MEDIAN_BLOCK = 512


def _median_block(logits: Tensor, centers: Tensor, inverse: Tensor, iterations: int) -> Tensor:
    """Weiszfeld on ``(Q, n)`` logits -> ``(2, n)``, the distribution reweighted by ``inverse`` ``(Q,)``."""
    probs = torch.softmax(logits, dim=0) * inverse[:, None]
    probs /= probs.sum(dim=0, keepdim=True)
    ct = centers.T.contiguous()
    ca, cb = centers[:, 0:1], centers[:, 1:2]
    ab = ct @ probs
    for _ in range(iterations):
        dist = (ca - ab[0:1]).square_().add_((cb - ab[1:2]).square_()).sqrt_().clamp_min_(1.0)
        pull = torch.div(probs, dist, out=dist)
        ab = (ct @ pull) / pull.sum(dim=0, keepdim=True)
    return ab


def decode_mode(logits: Tensor, centers: Tensor) -> Tensor:
    """The centre of the most probable bin at each pixel, ``(*, Q, H, W)`` -> ``(*, 2, H, W)``."""
    _validate(logits, centers)
    idx = logits.argmax(dim=-3)  # (*, H, W)
    return centers.to(dtype=logits.dtype, device=logits.device)[idx].movedim(-1, -3)


def decode_top_k(logits: Tensor, centers: Tensor, k: int) -> Tensor:
    """Probability-weighted mean of the ``k`` most probable bins' centres (k = 1 is the mode)."""
    _validate(logits, centers)
    k = _check_k(k, centers.shape[0])
    x = logits.to(_compute_dtype(logits))
    top_logits, top_idx = x.topk(k, dim=-3)
    weights = torch.softmax(top_logits, dim=-3)  # renormalised probabilities of the top k
    colours = centers.to(dtype=x.dtype, device=x.device)[top_idx]  # (*, k, H, W, 2)
    return (weights.unsqueeze(-1) * colours).sum(dim=-4).movedim(-1, -3).to(logits.dtype)


DECODE_METHODS = ("annealed", "mode", "top_k")


class ABDecoder(nn.Module):
    """Turns class logits into ab; holds the bin centres (gamut or palette) as a buffer.

    ``forward(logits, temperature=None, top_k=None, method=None)``: ``method`` is ``"annealed"``,
    ``"mode"`` or ``"top_k"``; by default ``top_k`` wins when given (non-zero), else the annealed mean at
    ``temperature`` (default ``self.default_temperature``). A temperature of 0 means the mode (the
    T -> 0 limit), both as the default and when passed; negative temperatures raise ConfigError.
    """

    def __init__(
        self, centers: Tensor, default_temperature: float = ZHANG_TEMPERATURE, default_top_k: int = 0
    ) -> None:
        super().__init__()
        _check_centers(centers)
        if isinstance(default_temperature, bool) or not isinstance(default_temperature, numbers.Real) \
                or not 0 <= default_temperature < math.inf:
            raise ConfigError(
                f"default_temperature must be a finite number >= 0, got {default_temperature!r}"
            )
        if default_top_k:
            _check_k(default_top_k, centers.shape[0], "default_top_k")
        self.register_buffer("centers", centers.detach().clone().float(), persistent=True)
        self.default_temperature = float(default_temperature)
        self.default_top_k = int(default_top_k)

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def forward(
        self,
        logits: Tensor,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
    ) -> Tensor:
        if method is None:
            if top_k:
                method = "top_k"
            elif temperature is not None:
                method = "annealed"
            elif self.default_top_k:
                method, top_k = "top_k", self.default_top_k
            else:
                method = "annealed"
        if method == "annealed":
            t = self.default_temperature if temperature is None else temperature
            if isinstance(t, numbers.Real) and not isinstance(t, bool) and t == 0:
                return decode_mode(logits, self.centers)
            return decode_annealed_mean(logits, self.centers, t)
        if method == "mode":
            return decode_mode(logits, self.centers)
        if method == "top_k":
            return decode_top_k(logits, self.centers, top_k if top_k else self.default_top_k or 1)
        raise ConfigError(f"unknown decoding method {method!r}; use one of {', '.join(DECODE_METHODS)}")
