"""Training objectives, picked from what a model *is* (task, decoder, hints, discriminator, embedding).

Every objective works on L ``(B, 1, H, W)`` in [0, 100] and physical ab ``(B, 2, H, W)``.
Regression losses compare ab / 110 (so values are O(0.01..1) whatever the family).

* :class:`Regression` - MSE, L1, SmoothL1 or Huber on ab (model config ``loss`` or ``--loss``).
* :class:`GamutClassification` - Zhang et al. 2016: 313-bin soft encoding (5-NN, sigma 5) of the target ab
  average-pooled to the logits' h x w, cross-entropy weighted by class rebalancing (lambda 0.5).
* :class:`GamutAndRegression` - the flagship's two heads: that cross-entropy + L1 on the regression head.
* :class:`PaletteClassification` - cross-entropy against each pixel's nearest palette colour.
* :class:`HintRegression` - siggraph17: simulated user hints, Huber on ab plus a weighted CE on the
  529-class (23 x 23 grid) head.
* :class:`FusionRegression` - MSE with the frozen backbone's embedding computed under ``no_grad``.
* :class:`Pix2PixGAN` - 100 x L1 + adversarial BCE-with-logits, with a PatchGAN discriminator, an
  optional L1-only warm-up phase and alternating G / D steps.

An objective's :meth:`Objective.adapter` returns the ``nn.Module`` whose ``forward`` the trainer calls
(and wraps in DDP / ``torch.compile``): that is how ``forward_with_classes`` or ``forward(l, embedding)``
go through DDP's gradient hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorcore import quantize
from colorcore.errors import ConfigError
from colorcore.models.base import AB_SCALE
from colorcore.models.litecolor import bin_weights_of, has_regression_head

REGRESSION_LOSSES = ("mse", "l1", "smoothl1", "huber")
HINT_GRID_STEP = 10.0
HINT_GRID_LIMIT = 110.0
HINT_GRID_SIDE = 23  # 23 x 23 = 529 classes, ab step 10 over [-110, 110]


@dataclass
class EvalOut:
    """One validation batch: scalar loss, ab at input size, and logits + centres for classifiers."""

    loss: Tensor
    ab: Tensor
    logits: Tensor | None = None  # (B, Q, h, w)
    centers: Tensor | None = None  # (Q, 2)
    ab_small: Tensor | None = None  # target ab pooled to h x w
    targets: Tensor | None = None  # (B, Q, h, w) unweighted (soft) target distribution


class Forward(nn.Module):
    """Calls one method of ``model``; DDP and ``torch.compile`` wrap this instead of the model."""

    def __init__(self, model: nn.Module, method: str = "forward") -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, self.method)(*args, **kwargs)


def regression_loss(name: str, delta: float = 1.0) -> Callable[[Tensor, Tensor], Tensor]:
    """A loss on physical ab that compares ab / 110; ``delta`` (Huber/SmoothL1) is in physical ab units.

    Names are case-, ``_``- and ``-``-insensitive (``smooth_l1`` = ``smoothl1``).
    """
    name = name.lower().replace("_", "").replace("-", "")
    if name not in REGRESSION_LOSSES:
        raise ConfigError(f"unknown regression loss {name!r}; choose one of {', '.join(REGRESSION_LOSSES)}")
    d = delta / AB_SCALE

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        p, t = pred.float() / AB_SCALE, target.float() / AB_SCALE
        if name == "mse":
            return F.mse_loss(p, t)
        if name == "l1":
            return F.l1_loss(p, t)
        if name == "smoothl1":
            return F.smooth_l1_loss(p, t, beta=d)
        return F.huber_loss(p, t, delta=d) / d  # Huber / delta keeps the value on the L1 scale

    return loss


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def full_precision(like: Tensor):
    """Autocast off: nearest-bin searches need fp32 distances (bf16 would pick wrong bins)."""
    return torch.autocast(like.device.type, enabled=False)


def pool_to(ab: Tensor, size: tuple[int, int]) -> Tensor:
    """Area-average ``ab (B, 2, H, W)`` down to ``size`` (the logits' h x w)."""
    return ab if ab.shape[-2:] == size else F.adaptive_avg_pool2d(ab, size)


class Objective(nn.Module):
    """Base class; subclasses hold extra state (class weights, a discriminator) as submodules/buffers."""

    kind: str = "regression"
    default_lr: float = 1e-3
    method: str = "forward"

    def adapter(self, model: nn.Module) -> nn.Module:
        return Forward(model, self.method)

    def train_loss(self, net: nn.Module, model: nn.Module, l: Tensor, ab: Tensor, step: int
                   ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss to minimise for one batch; ``net`` is the (maybe DDP-wrapped) adapter of ``model``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, l: Tensor, ab: Tensor, batch_index: int) -> EvalOut:
        """Validation loss and prediction for one batch (deterministic)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


class Regression(Objective):
    kind = "regression"

    def __init__(self, loss: str = "mse", delta: float = 1.0) -> None:
        super().__init__()
        self.loss_name = loss
        self.loss_fn = regression_loss(loss, delta)

    def train_loss(self, net, model, l, ab, step):
        loss = self.loss_fn(net(l), ab)
        return loss, {}

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        pred = model(l).float()
        return EvalOut(self.loss_fn(pred, ab), _upsample(pred, l.shape[-2:]))

    def describe(self) -> str:
        return f"{self.kind} ({self.loss_name})"


class FusionRegression(Regression):
    """Regression whose model also takes a frozen backbone embedding (computed without gradients)."""

    kind = "fusion"

    def _embedding(self, model: nn.Module, l: Tensor) -> Tensor:
        with torch.no_grad():
            return model.embed(l).detach()

    def train_loss(self, net, model, l, ab, step):
        return self.loss_fn(net(l, embedding=self._embedding(model, l)), ab), {}

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        pred = model(l, embedding=self._embedding(model, l)).float()
        return EvalOut(self.loss_fn(pred, ab), _upsample(pred, l.shape[-2:]))


class GamutClassification(Objective):
    """Zhang 2016 multinomial loss with soft encoding and class rebalancing."""

    kind = "gamut313"
    default_lr = 3e-4

    def __init__(self, centers: Tensor, class_weights: Tensor, k: int = 5, sigma: float = 5.0) -> None:
        super().__init__()
        self.register_buffer("centers", centers.detach().float().clone())
        self.register_buffer("class_weights", class_weights.detach().float().clone())
        self.k, self.sigma = k, sigma

    def _loss(self, logits: Tensor, ab: Tensor) -> Tensor:
        logits = logits.float()
        with full_precision(ab):
            target = quantize.soft_encode(pool_to(ab.float(), logits.shape[-2:]), self.centers, k=self.k,
                                          sigma=self.sigma)  # (B, Q, h, w)
        weights = self.class_weights[target.argmax(dim=1)]  # (B, h, w): weight of each pixel's nearest bin
        nll = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
        return (nll * weights).mean()

    def train_loss(self, net, model, l, ab, step):
        return self._loss(net(l), ab), {}

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        logits = model(l).float()
        pred = _upsample(model.decoder(logits), l.shape[-2:])
        small = pool_to(ab.float(), logits.shape[-2:])
        with full_precision(ab):
            targets = quantize.soft_encode(small, self.centers, k=self.k, sigma=self.sigma)
        return EvalOut(self._loss(logits, ab), pred, logits, self.centers, small, targets)


HEAD_REGRESSION_LOSSES = ("l1", "euclidean")
EUCLIDEAN_EPS = 1e-6  # keeps the distance's gradient finite where the prediction is exact


class GamutAndRegression(Objective):
    """The flagship's two heads (``model.forward_both``): Zhang's rebalanced soft-encoded CE on the 313-bin
    logits + ``l1_weight`` x a regression loss on the regression head's ab / 110.

    ``regression="l1"`` is L1 per channel against the target area-pooled to the head's h x w.
    ``regression="euclidean"`` is the per-pixel ab distance (what AuC integrates) of the head enlarged
    bilinearly to the target's size, as the pipeline enlarges it, so a full-size target trains the
    head for the output that is scored.

    The CE equals :class:`GamutClassification`'s, computed on the 5 nearest bins only (the soft target is
    zero elsewhere), which is several times cheaper on a CPU. Validation predicts the faithful decode: the
    median of the 313-bin head with these class weights divided out.
    """

    kind = "gamut313"
    default_lr = 1e-4  # end-to-end fine-tuning of a pretrained encoder
    method = "forward_both"

    def __init__(self, centers: Tensor, class_weights: Tensor, l1_weight: float = 5.0, regression: str = "l1"
                 ) -> None:
        super().__init__()
        if regression not in HEAD_REGRESSION_LOSSES:
            raise ConfigError(
                f"the regression head's loss must be one of {', '.join(HEAD_REGRESSION_LOSSES)}, "
                f"got {regression!r}"
            )
        self.register_buffer("centers", centers.detach().float().clone())
        self.register_buffer("class_weights", class_weights.detach().float().clone())
        self.l1_weight = float(l1_weight)
        self.regression = regression

    def describe(self) -> str:
        what = "L1 on ab" if self.regression == "l1" else "Euclidean ab distance at the target's size"
        return f"313-bin rebalanced CE + {self.l1_weight:g} x {what} (two heads)"

    def regression_loss(self, ab_pred: Tensor, ab: Tensor) -> Tensor:
        """Mean regression error in units of 110 ab; ``ab`` at the head's size or larger."""
        if self.regression == "l1":
            return F.l1_loss(ab_pred.float() / AB_SCALE, pool_to(ab.float(), ab_pred.shape[-2:]) / AB_SCALE)
        diff = (_upsample(ab_pred.float(), ab.shape[-2:]) - ab.float()) / AB_SCALE
        return (diff.square().sum(dim=1) + EUCLIDEAN_EPS).sqrt().mean()

    def cross_entropy(self, logits: Tensor, ab: Tensor, soft: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``soft``: precomputed :func:`colorcore.quantize.soft_encode_sparse` at the logits' size."""
        if soft is None:
            with full_precision(ab):
                soft = quantize.soft_encode_sparse(pool_to(ab.float(), logits.shape[-2:]), self.centers)
        idx, target = soft
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, idx)
        nll = -(target * log_p).sum(dim=1)
        return (nll * self.class_weights[idx[:, 0]]).mean()

    def loss(self, logits: Tensor, ab_pred: Tensor, ab: Tensor, soft: tuple[Tensor, Tensor] | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        ce = self.cross_entropy(logits, ab, soft)
        l1 = self.regression_loss(ab_pred, ab)
        return ce + self.l1_weight * l1, {"ce": ce.detach(), "l1": l1.detach()}

    def train_loss(self, net, model, l, ab, step):
        logits, ab_pred = net(l)
        return self.loss(logits, ab_pred, ab)

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        logits, ab_pred = model.forward_both(l)
        loss, _ = self.loss(logits, ab_pred, ab)
        small = pool_to(ab.float(), logits.shape[-2:])
        with full_precision(ab):
            targets = quantize.soft_encode(small, self.centers)
        faithful = quantize.decode_median(logits, self.centers, self.class_weights)
        return EvalOut(loss, _upsample(faithful.float(), l.shape[-2:]), logits.float(), self.centers, small,
                       targets)


class PaletteClassification(Objective):
    """Cross-entropy against the nearest palette colour (``model.decoder.centers``).

    With ``class_weights`` each pixel's loss is scaled by its palette colour's rebalancing weight, as in the
    313-bin loss; without them the loss is plain cross-entropy, which favours the frequent browns and grays.
    """

    kind = "palette"
    default_lr = 1e-3

    def __init__(self, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.rebalanced = class_weights is not None
        if class_weights is not None:
            self.register_buffer("class_weights", class_weights.detach().float().clone())

    def _loss(self, model: nn.Module, logits: Tensor, ab: Tensor) -> Tensor:
        logits = logits.float()
        with full_precision(ab):
            target = quantize.hard_assign(pool_to(ab.float(), logits.shape[-2:]), model.decoder.centers)
        if not self.rebalanced:
            return F.cross_entropy(logits, target)
        return (F.cross_entropy(logits, target, reduction="none") * self.class_weights[target]).mean()

    def describe(self) -> str:
        return f"{self.kind} ({'rebalanced' if self.rebalanced else 'plain'} cross-entropy)"

    def train_loss(self, net, model, l, ab, step):
        return self._loss(model, net(l), ab), {}

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        logits = model(l).float()
        pred = _upsample(model.decoder(logits), l.shape[-2:])
        small = pool_to(ab.float(), logits.shape[-2:])
        centers = model.decoder.centers
        with full_precision(ab):
            targets = quantize.soft_encode(small, centers, k=1)  # one-hot: the nearest palette colour
        return EvalOut(self._loss(model, logits, ab), pred, logits, centers, small, targets)


def hint_grid() -> Tensor:
    """``(529, 2)`` centres of the siggraph17 class head: a-major 23 x 23 grid, step 10 over [-110, 110]."""
    axis = torch.arange(-HINT_GRID_LIMIT, HINT_GRID_LIMIT + 1, HINT_GRID_STEP)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack((a.flatten(), b.flatten()), dim=1)


def hint_grid_index(ab: Tensor) -> Tensor:
    """Class index ``(B, h, w)`` long of ``ab (B, 2, h, w)`` on the a-major 23 x 23 grid."""
    idx = ((ab.float() + HINT_GRID_LIMIT) / HINT_GRID_STEP).round().clamp(0, HINT_GRID_SIDE - 1).long()
    return idx[:, 0] * HINT_GRID_SIDE + idx[:, 1]


class HintRegression(Objective):
    """siggraph17: simulated hints; SmoothL1 (beta 1 ab unit) on ab/110 + ``ce_weight`` x CE on 529 classes.

    The default weight 0.1 keeps colorization-pytorch's 10 : 1 ratio of regression to classification.
    """

    kind = "hints"
    default_lr = 3e-4
    method = "forward_with_classes"

    def __init__(self, simulate: Callable[..., tuple[Tensor, Tensor]], ce_weight: float = 0.1,
                 loss: str = "smoothl1", seed: int = 0) -> None:
        super().__init__()
        self.simulate = simulate
        self.ce_weight = float(ce_weight)
        self.loss_fn = regression_loss(loss, 1.0)
        self.seed = int(seed)

    def _class_target(self, ab: Tensor, size: tuple[int, int]) -> Tensor:
        return hint_grid_index(pool_to(ab.float(), size))

    def _hints(self, ab: Tensor, seed: int) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(seed)  # the simulator draws on the CPU
        return self.simulate(ab, generator=gen)

    def _loss(self, ab_pred: Tensor, class_logits: Tensor, ab: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        reg = self.loss_fn(ab_pred, ab)
        if self.ce_weight <= 0:
            return reg, {"reg": reg.detach()}
        ce = F.cross_entropy(class_logits.float(), self._class_target(ab, class_logits.shape[-2:]))
        return reg + self.ce_weight * ce, {"reg": reg.detach(), "ce": ce.detach()}

    def train_loss(self, net, model, l, ab, step):
        hints_ab, hints_mask = self._hints(ab, self.seed * 1_000_003 + step)
        ab_pred, class_logits = net(l, hints_ab, hints_mask)
        return self._loss(ab_pred.float(), class_logits, ab)

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        """Loss with fixed simulated hints per batch (so it only moves when the model does); the returned
        prediction (for PSNR, AuC, ...) uses no hints, comparable with the automatic models."""
        hints_ab, hints_mask = self._hints(ab, 7_777_777 + batch_index)
        ab_pred, class_logits = model.forward_with_classes(l, hints_ab, hints_mask)
        loss, _ = self._loss(ab_pred.float(), class_logits, ab)
        auto = model(l).float()
        return EvalOut(loss, _upsample(auto, l.shape[-2:]))


class Pix2PixGAN(Objective):
    """pix2pix: G minimises 100 x L1(ab / 110) + BCE(D(L, G(L)), real); D separates real from fake pairs.

    ``l1_pretrain_steps`` first steps train G with L1 only (D idle). Validation loss is the L1 term alone
    (the adversarial term is not comparable across D's training), which early stopping and best.pt use.
    """

    kind = "gan"
    default_lr = 2e-4
    betas = (0.5, 0.999)

    def __init__(self, discriminator: nn.Module, l1_weight: float = 100.0,
                 l1_pretrain_steps: int = 0) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.l1_pretrain_steps = int(l1_pretrain_steps)

    def adversarial(self, step: int) -> bool:
        return step >= self.l1_pretrain_steps

    @staticmethod
    def _l1(pred: Tensor, ab: Tensor) -> Tensor:
        return F.l1_loss(pred.float() / AB_SCALE, ab.float() / AB_SCALE)

    def generator_loss(self, net: nn.Module, l: Tensor, ab: Tensor, step: int
                       ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """G's loss and its (detached) fake ab for D's step. D runs unwrapped with frozen parameters."""
        fake = net(l)
        l1 = self._l1(fake, ab)
        logs = {"l1": l1.detach()}
        loss = self.l1_weight * l1
        if self.adversarial(step):
            d = self.discriminator
            was = [p.requires_grad for p in d.parameters()]
            for p in d.parameters():
                p.requires_grad_(False)
            logits = d(l, fake).float()
            for p, flag in zip(d.parameters(), was, strict=True):
                p.requires_grad_(flag)
            adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss = loss + adv
            logs["g_adv"] = adv.detach()
        return loss, fake.detach(), logs

    def discriminator_loss(self, d_net: nn.Module, l: Tensor, ab: Tensor, fake: Tensor
                           ) -> tuple[Tensor, dict[str, Tensor]]:
        real_logits = d_net(l, ab).float()
        fake_logits = d_net(l, fake).float()
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return loss, {"d": loss.detach()}

    def train_loss(self, net, model, l, ab, step):
        loss, _, logs = self.generator_loss(net, l, ab, step)
        return loss, logs

    @torch.no_grad()
    def evaluate(self, model, l, ab, batch_index):
        pred = model(l).float()
        return EvalOut(self._l1(pred, ab), _upsample(pred, l.shape[-2:]))


def is_gamut(centers: Tensor) -> bool:
    """True when ``centers`` are 313 gamut bins (not a k-means palette): Zhang et al.'s published ones, or the
    derived ones that older eccv16 checkpoints were trained on (they carry their centres in ``model_out``)."""
    got = centers.detach().cpu().float()
    return any(got.shape == ref.shape and torch.allclose(got, ref, atol=0.05)  # fp16-stored centres
               for ref in (quantize.gamut_centers(), quantize.derived_gamut_centers()))


@dataclass(frozen=True)
class ObjectiveOptions:
    """Command-line knobs of the objectives (None = the model config's value or the default)."""

    loss: str | None = None
    huber_delta: float = 1.0
    ce_weight: float | None = None
    l1_weight: float = 100.0
    l1_pretrain_steps: int = 0
    seed: int = 0
    rebalance_palette: bool = False


def store_bin_weights(model: nn.Module, objective: nn.Module) -> None:
    """Copy a rebalanced 313-bin objective's class weights into a model that keeps them (litecolor's
    ``bin_weights``), so the saved weights can divide them out in the faithful decode."""
    weights, kept = getattr(objective, "class_weights", None), bin_weights_of(model)
    if weights is not None and kept is not None:
        with torch.no_grad():
            kept.copy_(weights)


def make_objective(model: nn.Module, task: str, options: ObjectiveOptions,
                   class_weights: Callable[[Tensor], Tensor] | None = None) -> Objective:
    """The objective for ``model`` from its task and attributes.

    ``class_weights(centers) -> (Q,)`` supplies the rebalancing weights (from the training set's priors) of a
    313-bin classifier, or of a palette classifier with ``options.rebalance_palette``; only those call it.
    """
    config = getattr(model, "config", None)
    cfg_loss = getattr(config, "loss", None)
    if hasattr(model, "make_discriminator"):
        return Pix2PixGAN(model.make_discriminator(), options.l1_weight, options.l1_pretrain_steps)
    if getattr(model, "supports_hints", False) and hasattr(model, "forward_with_classes"):
        from colorcore.models import siggraph17  # the hint simulator lives with the model

        ce = options.ce_weight if options.ce_weight is not None else getattr(config, "ce_weight", 0.1)
        if siggraph17.NUM_CLASSES != HINT_GRID_SIDE**2:
            raise ConfigError(f"siggraph17 has {siggraph17.NUM_CLASSES} classes, not the 23 x 23 ab grid")
        loss = options.loss or cfg_loss or "smoothl1"
        return HintRegression(siggraph17.simulate_hints, ce, loss, options.seed)
    if hasattr(model, "embed"):
        return FusionRegression(options.loss or cfg_loss or "mse", options.huber_delta)
    if task == "classification":
        decoder = getattr(model, "decoder", None)
        if decoder is None:
            raise ConfigError(f"{type(model).__name__} is a classifier without a decoder holding its centres")
        if is_gamut(decoder.centers):
            if class_weights is None:
                raise ConfigError("a 313-bin classifier needs class rebalancing weights (training priors)")
            centers = decoder.centers.detach().cpu()
            if has_regression_head(model):
                return GamutAndRegression(centers, class_weights(centers))
            return GamutClassification(centers, class_weights(centers))
        if options.rebalance_palette:
            if class_weights is None:
                raise ConfigError("palette rebalancing needs class rebalancing weights (training priors)")
            return PaletteClassification(class_weights(decoder.centers.detach().cpu()))
        return PaletteClassification()
    return Regression(options.loss or cfg_loss or "mse", options.huber_delta)
