"""Fast inference: an optimised copy of a model, and fused full-resolution kernels for the pipeline.

:func:`optimize` returns a copy of a model prepared for inference. The caller's model is never modified,
and on the CPU every tensor that does not change is shared with it rather than copied. What it does:

1. **BatchNorm folding** (eval-mode ``BatchNorm2d`` with running statistics). Which module feeds which
   is read from the autograd graph of one forward pass on the check input (exact dataflow, whatever
   Python ``forward`` does); a module is changed only if it is called once and its output feeds
   nothing but the module it is folded with:

   - ``Conv -> BN``: BN's scale and shift go into the conv's weight and bias
     (:func:`torch.nn.utils.fusion.fuse_conv_bn_weights`).
   - ``BN -> Conv2d``: Zhang et al.'s blocks end in ``conv, ReLU, BN``. A BN after a ReLU cannot go into
     the conv before it, but it can go into the conv after it: its scale multiplies that conv's input
     channels and its shift, summed through the kernel, joins the bias. Alone that would be wrong at the
     image border, where the conv reads zero padding and not BN's shift, so the conv keeps the shift's
     per-tap sums (``edge_taps``, ``(C_out, 1, kh, kw)``) and adds back the exact difference on the thin
     frame of output pixels whose window reaches into the padding. The result is exact, not approximate.

2. **Winograd convolutions** (CPU, float32): 3x3 stride-1 "same" convs with at least
   :data:`WINOGRAD_MIN_CHANNELS` channels in and out run through NNPACK's Winograd kernels, about 1.3-3x
   faster than the default on AVX2 for feature maps of at least :data:`WINOGRAD_MIN_SIDE` pixels (only
   used there; smaller maps and thin layers keep the default). A dilated conv (dilation d) runs as one
   undilated conv over its d x d polyphase components laid side by side with a zero row and column
   between them, which reproduces each component's zero padding exactly. A batch is run image by image,
   which NNPACK does much faster than its batched entry point.

3. **channels_last** on CUDA (cuDNN's preferred layout). On the CPU it made the convs slower here.

4. **bfloat16 autocast** only on CPUs with native bf16 (AVX512-BF16 or AMX in ``/proc/cpuinfo``) and only
   when the predicted ab stay within :data:`BF16_AB_TOLERANCE` of float32 on a test image. On other CPUs
   bf16 is emulated and slower, so it is never chosen automatically.

The optimised copy is compared with the original on a random input; if it differs by more than
:data:`CHECK_TOLERANCE` (relative to the output's magnitude) or cannot run, the original model is used
and a :class:`RuntimeWarning` says why.

The full-resolution kernels (:func:`rgb_to_gray`, :func:`merge_gray_ab`) work on the CPU in bands of
rows, in float32 and with small lookup tables, so no full-size float image is ever made:

- ``rgb_to_gray``: CIE L of each sRGB pixel, rounded to the nearest of the 256 gray levels. L depends on
  the relative luminance Y only, and Y is a sum of three per-channel tables, so the whole conversion is
  three table look-ups, two integer adds, a look-up of the gray level by the top bits of Y and one
  comparison with the boundary between two levels.
- ``merge_gray_ab``: bilinear ab upsampling (separable: the small ab map is widened once, then each band
  of rows is interpolated from two source rows), Lab -> XYZ with L's part taken from 256-entry tables
  (the gray level fixes f(Y) and Y), one 3x3 matrix product, and linear -> 8-bit sRGB without any power:
  a table gives the code at the start of each of 8192 cells of linear light and one comparison with the
  single rounding threshold inside the cell gives the exactly rounded code.

On a 2-core AVX2 machine (one thread) these made eccv16 at 256 px about 1.7x faster (NNPACK spends a
fixed ~18 ms per 512x512-channel layer transforming the kernel, which torch gives no way to keep) and the
full-resolution work for a 12 MP photo about 3x faster; ``scripts/bench.py`` measures the whole pipeline.
:func:`cached_optimize` keeps one optimised copy per model, so per-request ``Colorizer`` objects stay cheap.
Nothing here changes global state (no fx tracing, which patches ``nn.Module`` while it runs; no thread
settings), so models may be optimised while other threads run inference.
"""

from __future__ import annotations

import copy
import itertools
import threading
import warnings
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from colorcore.color import (
    _LAB_EPS,
    _LAB_F_EPS,
    _LAB_OFFSET,
    _LAB_SLOPE,
    _RGB_TO_XYZ,
    _SRGB_KNEE,
    _WHITE_D65,
)

CHECK_TOLERANCE = 1e-3  # max |fast - plain| / max |plain| on the check input
BF16_AB_TOLERANCE = 0.5  # mean |delta ab| (physical units) that bf16 autocast may cost
WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MIN_SIDE = 32
_WINOGRAD_SCRATCH_FLOATS = 1 << 22  # NNPACK transform buffers per call: 16 MB

# The colour maths must agree with colorcore.color (scikit-image's constants): take them from there.
_Y_ROW = _RGB_TO_XYZ[1]  # linear RGB -> Y (D65, Y_n = 1)
_XYZ_TO_RGB = np.linalg.inv(np.array(_RGB_TO_XYZ))
_WHITE = np.array(_WHITE_D65)
_Y_BITS, _COARSE_BITS = 26, 20  # fixed-point resolution of Y in rgb_to_gray, and of its look-up table


# ------------------------------------------------------------------------------------------ the report


@dataclass(frozen=True)
class FastReport:
    """What :func:`optimize` did to a model."""

    folded_into_previous: int = 0  # Conv -> BN pairs folded into the conv
    folded_into_next: int = 0  # BN -> Conv pairs folded into the following conv
    winograd: int = 0  # convs that run through NNPACK's Winograd kernels on CPU
    channels_last: bool = False
    bf16: bool = False
    check_error: float = 0.0  # max relative difference from the original on the check input
    fallback: str = ""  # why the original model is used instead ("" when the optimised one is)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        """Whether inference runs on a modified copy of the model."""
        return not self.fallback and bool(self.folded_into_previous or self.folded_into_next or self.winograd
                                          or self.channels_last or self.bf16)

    def __str__(self) -> str:
        if self.fallback:
            return f"plain model ({self.fallback})"
        parts = [f"{self.folded_into_previous} BN folded into the conv before",
                 f"{self.folded_into_next} into the conv after", f"{self.winograd} Winograd convs"]
        if self.channels_last:
            parts.append("channels_last")
        if self.bf16:
            parts.append("bf16 autocast")
        return ", ".join(parts) + f" (max rel. error {self.check_error:.1e})"


# ------------------------------------------------------------------------------------ hardware probes


def cpu_has_fast_bf16() -> bool:
    """True when ``/proc/cpuinfo`` lists AMX-BF16 or AVX512-BF16 (Linux; False elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@cache
def nnpack_ok() -> bool:
    """Whether NNPACK is built in and agrees with the default convolution on this CPU (checked once)."""
    try:
        # _nnpack_available() also initialises NNPACK; convolutions fail before that.
        if not torch._nnpack_available():
            return False
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 8, 20, 20, generator=gen)
        w = torch.randn(8, 8, 3, 3, generator=gen) / 9
        b = torch.randn(8, generator=gen)
        with torch.inference_mode():
            got = torch._nnpack_spatial_convolution(x, w, b, [1, 1])
            want = F.conv2d(x, w, b, padding=1)
        return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-4))
    except (RuntimeError, AttributeError):
        return False


# ------------------------------------------------------------------------------- the fast conv module


def _winograd(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
    """3x3 "same" conv of ``x`` (B, C, H, W) through NNPACK, one image at a time."""
    if dilation > 1:
        return _dilated_winograd(x, weight, bias, dilation)
    if x.shape[0] == 1:
        return _winograd_one(x, weight, bias)
    return torch.cat([_winograd_one(x[i : i + 1], weight, bias) for i in range(x.shape[0])])


def _winograd_one(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """One image ``(1, C, H, W)``; large maps in strips of rows so NNPACK's transform buffers stay small.

    NNPACK transforms the whole map at once (8x8 tiles of every input and output channel): for a 256 px
    map with 128 channels that is over 100 MB of scratch per call. Strips of rows (each with the row
    above and below it) bound that to :data:`_WINOGRAD_SCRATCH_FLOATS`, at some cost in speed (each strip
    transforms the kernel again): measured on siggraph17 at 256 px, 16 MB strips cut the memory the
    process keeps after a forward pass from +152 MB to +110 MB (plain convolutions: +55 to +89 MB).
    """
    _, c_in, h, w = x.shape
    per_tile_row = -(-w // 6) * (c_in + weight.shape[0]) * 64  # floats per row of 6x6 output tiles
    rows = max(1, _WINOGRAD_SCRATCH_FLOATS // per_tile_row) * 6
    if rows >= h:
        return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1])
    padded = F.pad(x, (0, 0, 1, 1))  # the zero rows above and below the image
    out = x.new_empty(1, weight.shape[0], h, w)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        strip = padded[:, :, r0 : r1 + 2].contiguous()
        out[:, :, r0:r1] = torch._nnpack_spatial_convolution(strip, weight, bias, [0, 1])  # pad (rows, cols)
    return out


def _dilated_winograd(x: Tensor, weight: Tensor, bias: Tensor | None, d: int) -> Tensor:
    """Dilated 3x3 conv (padding d) as one undilated conv over the d x d polyphase components.

    Component (p, q) holds pixels (i d + p, j d + q). The components are tiled into a
    ``d (h + 1) x d (w + 1)`` image, each followed by a zero row and column: with padding 1 every
    component then sees zeros exactly where the dilated conv would read its padding.
    """
    b, c, h, w = x.shape
    hp, wp = -(-h // d), -(-w // d)
    if hp * d != h or wp * d != w:  # extra zero rows / columns act as padding too
        x = F.pad(x, (0, wp * d - w, 0, hp * d - h))
    tiled = x.new_zeros(b, c, d, hp + 1, d, wp + 1)
    tiled[:, :, :, :hp, :, :wp] = x.view(b, c, hp, d, wp, d).permute(0, 1, 3, 2, 5, 4)
    out = _winograd(tiled.view(b, c, d * (hp + 1), d * (wp + 1)), weight, bias, 1)
    co = out.shape[1]
    out = out.view(b, co, d, hp + 1, d, wp + 1)[:, :, :, :hp, :, :wp].permute(0, 1, 3, 2, 5, 4)
    return out.reshape(b, co, hp * d, wp * d)[:, :, :h, :w].contiguous()


class FastConv2d(nn.Module):
    """An inference-only ``Conv2d``: optional Winograd path and the border fix of a folded-in BN.

    Args:
        conv: the conv whose geometry (stride, padding, dilation, groups) is kept.
        weight, bias: the (possibly folded) parameters; shared with ``conv`` when unchanged.
        edge_taps: ``(C_out, 1, kh, kw)`` per-tap sums of a preceding BN's shift, or None.
        winograd: run through NNPACK when the input allows it (see :meth:`_fits_winograd`).
    """

    def __init__(self, conv: nn.Conv2d, weight: Tensor, bias: Tensor | None, edge_taps: Tensor | None,
                 winograd: bool) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, \
            conv.groups
        self.register_buffer("weight", weight.detach(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach(), persistent=False)
        self.register_buffer("edge_taps", edge_taps, persistent=False)
        self.winograd = winograd
        self._frames: dict[tuple, list[tuple[slice, slice, Tensor]]] = {}

    def extra_repr(self) -> str:
        co, ci, kh, kw = self.weight.shape
        return (f"{ci * self.groups}, {co}, kernel_size=({kh}, {kw}), stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, winograd={self.winograd}, "
                f"border_fix={self.edge_taps is not None}")

    def _fits_winograd(self, x: Tensor) -> bool:
        return (self.winograd and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
                and min(x.shape[-2:]) >= WINOGRAD_MIN_SIDE
                and not (torch.is_grad_enabled() and x.requires_grad))

    def forward(self, x: Tensor) -> Tensor:
        if self._fits_winograd(x):
            try:
                y = _winograd(x, self.weight, self.bias, self.dilation[0])
            except RuntimeError as exc:  # NNPACK refused (unusual shape or CPU): default from now on
                warnings.warn(f"Winograd conv failed ({exc}); using the default convolution", RuntimeWarning,
                              stacklevel=2)
                self.winograd = False
                return self.forward(x)
        else:  # under autocast F.conv2d casts by itself
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.edge_taps is not None:
            for rows, cols, fix in self._border(x, y):
                y[:, :, rows, cols] += fix
        return y

    def _border(self, x: Tensor, y: Tensor) -> list[tuple[slice, slice, Tensor]]:
        """Cached per input size: (rows, cols, correction) strips covering the padding-touched frame."""
        key = (x.shape[-2], x.shape[-1], y.device, y.dtype)
        strips = self._frames.get(key)
        if strips is None:  # a benign race between threads computes the same thing twice
            strips = _border_strips(self.edge_taps, x.shape[-2], x.shape[-1], self.stride, self.padding,
                                    self.dilation, y.dtype)
            self._frames[key] = strips
        return strips


def _border_strips(taps: Tensor, h: int, w: int, stride: tuple[int, int], padding: tuple[int, int],
                   dilation: tuple[int, int], dtype: torch.dtype) -> list[tuple[slice, slice, Tensor]]:
    """Correction ``(C_out, rows, cols)`` strips: the taps that fall on zero padding, with a minus sign.

    Inside the image every tap sees BN's shift; at the border some taps see zero padding instead, and the
    folded bias (which assumed all taps) must lose those taps' contributions.
    """
    ones = taps.new_ones(1, 1, h, w)
    inside = F.conv2d(ones, taps, None, stride, padding, dilation)[0]  # taps over real pixels only
    corr = inside - taps.sum(dim=(1, 2, 3)).view(-1, 1, 1)
    kh, kw = taps.shape[-2:]
    counts = F.conv2d(ones, taps.new_ones(1, 1, kh, kw), None, stride, padding, dilation)[0, 0]
    touch = counts < kh * kw - 0.5
    ho, wo = touch.shape

    def edge(flags: Tensor) -> tuple[int, int]:
        values = flags.tolist()
        lead = next((i for i, v in enumerate(values) if not v), len(values))
        trail = next((i for i, v in enumerate(reversed(values[lead:])) if not v), len(values) - lead)
        return lead, trail

    top, bottom = edge(touch.any(dim=1))
    left, right = edge(touch.any(dim=0))
    mid_rows, mid_cols = slice(top, ho - bottom), slice(left, wo - right)
    if touch[mid_rows, mid_cols].any():  # cannot happen for convolution geometry; stay exact regardless
        return [(slice(None), slice(None), corr.to(dtype))]
    strips = [(slice(0, top), slice(None)), (slice(ho - bottom, ho), slice(None)),
              (mid_rows, slice(0, left)), (mid_rows, slice(wo - right, wo))]
    return [(r, c, corr[:, r, c].to(dtype).contiguous()) for r, c in strips if corr[:, r, c].numel()]


# ------------------------------------------------------------------------------- BatchNorm folding


@dataclass
class _Edit:
    """Pending new parameters of one conv."""

    weight: Tensor
    bias: Tensor | None
    edge_taps: Tensor | None = None


def _bn_ok(bn: nn.Module) -> bool:
    return (type(bn) is nn.BatchNorm2d and not bn.training and bn.track_running_stats
            and bn.running_mean is not None and bn.running_var is not None)


def _plain_conv(m: nn.Module) -> bool:
    """A ``Conv2d`` (not a subclass: those may override forward) with numeric zero padding."""
    return type(m) is nn.Conv2d and m.padding_mode == "zeros" and isinstance(m.padding, tuple)


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """BN(x) = scale * x + shift per channel, in float64."""
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


@dataclass
class _Call:
    """One call of a conv or BN module during the analysis forward pass."""

    module: nn.Module
    input_node: object  # autograd node that produced the module's input (None: a leaf or no graph)
    output_node: object  # autograd node of the module's output


def _dataflow(model: nn.Module, example: Tensor) -> tuple[list[_Call], dict[object, list[object]]]:
    """Conv/BN calls of one forward pass and, for every autograd node, the nodes that consume its output.

    The autograd graph of a forward pass with gradients enabled is the model's exact dataflow, whatever
    Python ``forward`` runs (control flow, slicing, sums), so it tells whether a BN's output feeds one
    conv and nothing else. Unlike ``torch.fx`` tracing it patches nothing globally, so it is safe while
    other threads run models.
    """
    calls: list[_Call] = []

    def hook(module: nn.Module, args: tuple, out: object) -> None:
        first = args[0] if args and isinstance(args[0], Tensor) else None
        calls.append(_Call(module, None if first is None else first.grad_fn,
                           out.grad_fn if isinstance(out, Tensor) else None))

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in kinds]
    try:
        with torch.enable_grad():
            out = model(example.detach().clone().requires_grad_(True))
    finally:
        for handle in handles:
            handle.remove()
    consumers: dict[object, list[object]] = {}
    roots = [out.grad_fn] if isinstance(out, Tensor) else []
    seen: set[int] = set()
    while roots:
        node = roots.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        for child, _ in node.next_functions:
            if child is not None:
                consumers.setdefault(child, []).append(node)
                roots.append(child)
    return calls, consumers


def _takes(call: _Call | None, bn_call: _Call, edits: dict[nn.Module, _Edit]) -> bool:
    """Whether ``call`` is of a plain conv reading exactly the BN's output, with no BN folded in yet."""
    if call is None or call.input_node is not bn_call.output_node:
        return False
    conv = call.module
    return _plain_conv(conv) and conv.groups == 1 and (conv not in edits or edits[conv].edge_taps is None)


def _fold_batchnorms(model: nn.Module, example: Tensor) -> tuple[int, int]:
    """Fold every foldable BN of ``model`` (in place: call on a copy); returns (into previous, into next)."""
    calls, consumers = _dataflow(model, example)
    count = Counter(id(c.module) for c in calls)
    registered = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    # Only modules called once and registered once: nothing else can see the modules we change.
    once = [c for c in calls if count[id(c.module)] == 1 and registered[id(c.module)] == 1
            and c.output_node is not None]
    producer = {id(c.output_node): c for c in once}

    def consumer_calls(call: _Call) -> list[_Call | None]:
        return [producer.get(id(n)) for n in consumers.get(call.output_node, [])]

    edits: dict[nn.Module, _Edit] = {}
    removed: list[nn.Module] = []

    def edit_of(conv: nn.Module) -> _Edit:
        if conv not in edits:
            bias = None if conv.bias is None else conv.bias.detach()
            edits[conv] = _Edit(conv.weight.detach(), bias)
        return edits[conv]

    into_previous = into_next = 0
    for call in once:  # Conv -> BN
        bn = call.module
        if type(bn) is not nn.BatchNorm2d or not _bn_ok(bn):
            continue
        src = producer.get(id(call.input_node))
        if src is None or [id(u) for u in consumer_calls(src)] != [id(call)]:
            continue
        conv = src.module
        transposed = type(conv) is nn.ConvTranspose2d and conv.groups == 1
        if not (_plain_conv(conv) or transposed):
            continue
        e = edit_of(conv)
        w, b = fuse_conv_bn_weights(e.weight.double(), None if e.bias is None else e.bias.double(),
                                    bn.running_mean.double(), bn.running_var.double(), bn.eps,
                                    None if bn.weight is None else bn.weight.detach().double(),
                                    None if bn.bias is None else bn.bias.detach().double(),
                                    transpose=transposed)
        e.weight, e.bias = w.detach().to(e.weight.dtype), b.detach().to(e.weight.dtype)
        removed.append(bn)
        into_previous += 1
    for call in once:  # BN -> Conv2d
        bn = call.module
        if type(bn) is not nn.BatchNorm2d or bn in removed or not _bn_ok(bn):
            continue
        users = consumer_calls(call)
        if not users or not all(_takes(u, call, edits) for u in users):
            continue
        scale, shift = _bn_scale_shift(bn)
        for user in users:
            e = edit_of(user.module)
            w = e.weight.double()
            taps = (w * shift.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
            bias = taps.sum(dim=(1, 2, 3)) + (0.0 if e.bias is None else e.bias.double())
            e.weight = (w * scale.view(1, -1, 1, 1)).to(e.weight.dtype)
            e.bias = bias.to(e.weight.dtype)
            e.edge_taps = taps.to(e.weight.dtype)
        removed.append(bn)
        into_next += 1
    for conv, e in edits.items():
        if type(conv) is nn.Conv2d:
            new: nn.Module = FastConv2d(conv, e.weight, e.bias, e.edge_taps, winograd=False)
        else:  # ConvTranspose2d: a fresh module with the fused parameters
            new = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                     conv.padding, conv.output_padding, conv.groups, True, conv.dilation,
                                     conv.padding_mode, device="meta")
            new.weight = nn.Parameter(e.weight, requires_grad=False)
            new.bias = nn.Parameter(e.bias, requires_grad=False)
        _replace(model, conv, new)
    for bn in removed:
        _replace(model, bn, nn.Identity())
    return into_previous, into_next


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent._modules.items():
            if child is old:
                parent._modules[name] = new


def _winograd_shape(conv: nn.Module) -> bool:
    """3x3, stride 1, "same" padding (= dilation), no groups, wide enough to profit."""
    weight = conv.weight
    return (weight.dim() == 4 and tuple(weight.shape[-2:]) == (3, 3) and tuple(conv.stride) == (1, 1)
            and conv.groups == 1 and conv.dilation[0] == conv.dilation[1]
            and tuple(conv.padding) == tuple(conv.dilation) and weight.dtype == torch.float32
            and min(weight.shape[0], weight.shape[1]) >= WINOGRAD_MIN_CHANNELS)


def _install_winograd(model: nn.Module) -> int:
    """Route every Winograd-shaped conv through NNPACK (in place: call on a copy); returns how many."""
    count = 0
    for parent in list(model.modules()):
        for child in list(parent._modules.values()):
            if isinstance(child, FastConv2d) and _winograd_shape(child):
                child.winograd = True
                count += 1
            elif child is not None and _plain_conv(child) and _winograd_shape(child):
                fast = FastConv2d(child, child.weight, child.bias, None, winograd=True)
                _replace(model, child, fast)
                count += 1
    return count


# ----------------------------------------------------------------------------------------- optimize


def _shared_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the module tree whose parameters and buffers are the original tensors."""
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def _check_input(size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(1, 1, size, size, generator=gen) * 100).to(device, dtype)


def _smooth_input(size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A photo-like L ``(1, 1, S, S)``: ramps and waves over [5, 95]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    l = 50 + 30 * torch.sin(6 * x + 3 * y) + 15 * torch.cos(11 * y - 4 * x)
    return l.clamp(5, 95)[None, None].to(device, dtype)


def _relative_error(model: nn.Module, fast: nn.Module, l: Tensor) -> float:
    with torch.inference_mode():
        want, got = model(l), fast(l)
    if not isinstance(want, Tensor) or not isinstance(got, Tensor) or want.shape != got.shape:
        raise TypeError("forward does not return one tensor")
    scale = want.float().abs().max().clamp_min(1e-6)
    return float((got.float() - want.float()).abs().max() / scale)


def bf16_ab_error(model: nn.Module, size: int) -> float:
    """Mean |ab(bf16 autocast) - ab(float32)| of ``model.predict_ab`` on a smooth test image, CPU."""
    l = _smooth_input(size, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        ref = model.predict_ab(l)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.predict_ab(l)
    return float((low.float() - ref.float()).abs().mean())


def optimize(
    model: nn.Module, example_size: int = 64, *, example: Tensor | None = None, bf16: bool | None = None,
    winograd: bool | None = None,
) -> tuple[nn.Module, FastReport]:
    """An inference-optimised stand-in for ``model`` (eval mode) and what was done (module docstring).

    Args:
        model: a colorcore model (``forward(l)`` on L ``(B, 1, H, W)``), on its final device.
        example_size: side of the square check input (random L in [0, 100]); a multiple of the stride.
        example: the check input itself, for modules that do not take L ``(B, 1, H, W)``.
        bf16: bfloat16 autocast on CPU: None = only with native bf16 and if the quality check passes,
            True = always (for tests), False = never.
        winograd: NNPACK Winograd convs on CPU: None/True = where they fit and NNPACK works, False = never.

    Returns:
        ``(net, report)``; ``net`` is ``model`` itself when nothing applies or the check fails.
    """
    params = list(itertools.chain(model.parameters(), model.buffers()))
    device = params[0].device if params else torch.device("cpu")
    dtype = next((p.dtype for p in params if p.is_floating_point()), torch.float32)
    try:
        fast = _shared_copy(model) if device.type == "cpu" else copy.deepcopy(model)
        fast.eval()
        l = example if example is not None else _check_input(example_size, device, dtype)
        into_previous, into_next = _fold_batchnorms(fast, l)
        use_bf16 = False
        notes: list[str] = []
        if device.type == "cpu" and bf16 is not False and hasattr(fast, "predict_ab") \
                and (bf16 is True or cpu_has_fast_bf16()):
            err = bf16_ab_error(fast, example_size)
            use_bf16 = bool(bf16) or err <= BF16_AB_TOLERANCE
            notes.append(f"bf16 mean |delta ab| {err:.3f}")
        n_winograd = 0
        if device.type == "cpu" and winograd is not False and not use_bf16 and nnpack_ok():
            n_winograd = _install_winograd(fast)
        channels_last = device.type == "cuda"
        if channels_last:
            fast = fast.to(memory_format=torch.channels_last)
        report = FastReport(into_previous, into_next, n_winograd, channels_last, use_bf16, notes=tuple(notes))
        if not report.changed:
            return model, report
        error = _relative_error(model, fast, l)
    except Exception as exc:  # noqa: BLE001 - an optimisation must never make a working model fail
        reason = f"optimisation failed: {type(exc).__name__}: {exc}"
        warnings.warn(f"fast inference disabled for {type(model).__name__}: {reason}", RuntimeWarning,
                      stacklevel=2)
        return model, FastReport(fallback=reason)
    if not error <= CHECK_TOLERANCE:  # also catches NaN
        reason = f"optimised model differs from the original by {error:.2e} (relative)"
        warnings.warn(f"fast inference disabled for {type(model).__name__}: {reason}", RuntimeWarning,
                      stacklevel=2)
        return model, FastReport(fallback=reason)
    return fast, FastReport(into_previous, into_next, n_winograd, channels_last, use_bf16, error,
                            notes=tuple(notes))


_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module, FastReport]] = \
    weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _fingerprint(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced, moved, cast or modified in place."""
    return tuple((t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape))
                 for t in itertools.chain(model.parameters(), model.buffers()))


def cached_optimize(model: nn.Module, example_size: int = 64) -> tuple[nn.Module, FastReport]:
    """:func:`optimize` with default options, remembered per model while its tensors stay the same.

    Front ends build a :class:`~colorcore.pipeline.Colorizer` per request over a cached model; this keeps
    that cheap. Entries go away with their model (weak keys).
    """
    key = _fingerprint(model)
    with _CACHE_LOCK:
        hit = _CACHE.get(model)
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    net, report = optimize(model, example_size)
    with _CACHE_LOCK:
        _CACHE[model] = (key, net, report)
    return net, report


# -------------------------------------------------------------------------- full-resolution kernels


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v > _SRGB_KNEE, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _LAB_EPS, np.cbrt(t), _LAB_SLOPE * t + _LAB_OFFSET)


@cache
def _gray_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-point Y tables and the nearest-gray-level look-up for :func:`rgb_to_gray`.

    Y is held as an integer in units of 2^-26 (the sum of three rounded table entries is within 2e-8 of
    the exact Y, well under 1e-4 L). ``coarse`` maps the top 20 bits of Y to the gray level at the start
    of that cell and ``bounds`` (the Y where L is half-way between two gray levels) settles the one
    boundary a cell may hold: gray levels are at least 3e-4 apart in Y, cells 2^-20.
    """
    lin = _srgb_to_linear(np.arange(256) / 255.0)
    scale = float(1 << _Y_BITS)
    r, g, b = (np.round(c * lin * scale).astype(np.uint32) for c in _Y_ROW)
    levels = 116.0 * _lab_f(lin) - 16.0  # L of each gray level (R = G = B, so Y = lin)
    f_mid = ((levels[1:] + levels[:-1]) / 2 + 16.0) / 116.0
    y_mid = np.where(f_mid > _LAB_F_EPS, f_mid**3, (f_mid - _LAB_OFFSET) / _LAB_SLOPE)
    bounds = np.append(np.ceil(y_mid * scale), 2.0**32 - 1).astype(np.uint32)  # bounds[g]: g -> g + 1
    starts = np.arange((1 << _COARSE_BITS) + 1, dtype=np.uint64) << (_Y_BITS - _COARSE_BITS)
    coarse = np.searchsorted(bounds[:-1], starts, side="right").astype(np.uint8)
    return r, g, b, coarse, bounds


def rgb_to_gray(rgb: np.ndarray, band_pixels: int = 1 << 16) -> np.ndarray:
    """``(H, W, 3)`` uint8 sRGB -> ``(H, W)`` uint8: each pixel's CIE L rounded to the nearest gray level.

    A gray pixel (R = G = B = v) gives v back. Works in bands of about ``band_pixels`` pixels.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb_to_gray expects an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    lr, lg, lb, coarse, bounds = _gray_tables()
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.uint8)
    step = max(1, band_pixels // max(w, 1))
    for r0 in range(0, h, step):
        band = rgb[r0 : r0 + step]
        dest = out[r0 : r0 + step]
        y = np.take(lr, band[..., 0])
        y += np.take(lg, band[..., 1])
        y += np.take(lb, band[..., 2])
        np.take(coarse, y >> (_Y_BITS - _COARSE_BITS), out=dest)
        dest += y >= np.take(bounds, dest)  # the boundary inside the cell, if Y is past it
    return out


@cache
def _merge_tables() -> tuple[np.ndarray, np.ndarray, Tensor]:
    """f(Y) and Y of each gray level (float32, 256 each) and the f -> linear RGB matrix (float32, 3x3)."""
    lin = _srgb_to_linear(np.arange(256) / 255.0)
    levels = 116.0 * _lab_f(lin) - 16.0
    fy = (levels + 16.0) / 116.0
    # Y from f(Y) exactly as lab_to_rgb inverts it (not `lin`, so that L -> Y -> L round-trips as there).
    y = np.where(fy > _LAB_F_EPS, fy**3, (fy - _LAB_OFFSET) / _LAB_SLOPE)
    matrix = torch.from_numpy((_XYZ_TO_RGB * _WHITE[None, :]).astype(np.float32))  # (X/Xn, Y, Z/Zn) -> RGB
    return fy.astype(np.float32), y.astype(np.float32), matrix


_GAMMA_CELLS = 8192  # cells of the linear -> 8-bit sRGB table; at most one rounding threshold per cell


@cache
def _gamma_tables() -> tuple[np.ndarray, np.ndarray]:
    """Exact linear -> 8-bit sRGB by table: the code at each cell's start and the threshold inside it.

    Code k (0..255) covers linear values from t_k = srgb^-1((k - 1/2) / 255) up to t_(k+1). Cell i spans
    [i / N, (i + 1) / N); with N = 8192 cells no cell holds two thresholds (their smallest gap, in the
    linear segment of the curve, is 1 / (255 * 12.92) > 1 / N), so ``base[i] + (x >= thr[i])`` is the
    exactly rounded code of x. Thresholds are taken in float32, the type they are compared in.
    """
    v = (np.arange(1, 256) - 0.5) / 255
    thresholds = _srgb_to_linear(v).astype(np.float32)
    starts = (np.arange(_GAMMA_CELLS + 1) / _GAMMA_CELLS).astype(np.float32)  # exact in float32
    base = np.searchsorted(thresholds, starts, side="right").astype(np.uint8)
    inside = np.full(_GAMMA_CELLS + 1, np.inf, np.float32)
    cells = np.floor(thresholds.astype(np.float64) * _GAMMA_CELLS).astype(np.int64)
    if len(np.unique(cells)) != len(cells):
        raise AssertionError("two sRGB thresholds share a cell; raise _GAMMA_CELLS")
    inside[cells] = thresholds
    return base, inside


def _source_rows(out_size: int, in_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Bilinear (align_corners=False) source rows i0, i1 and weight of i1 for each output row."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return torch.from_numpy(i0), torch.from_numpy(i1), torch.from_numpy((src - i0).astype(np.float32))


def _finv(f: Tensor, scratch: Tensor, mask: Tensor) -> None:
    """In place: f -> f^3 above the CIE threshold, (f - 16/116) / 7.787 below (Lab -> XYZ / white)."""
    torch.mul(f, f, out=scratch).mul_(f)
    torch.gt(f, _LAB_F_EPS, out=mask)
    f.sub_(_LAB_OFFSET).mul_(1 / _LAB_SLOPE)
    torch.where(mask, scratch, f, out=f)


def merge_gray_ab(gray: np.ndarray, ab_small: Tensor, band_pixels: int = 1 << 16) -> np.ndarray:
    """Full-resolution gray ``(H, W)`` uint8 + small ab ``(2, h, w)`` -> ``(H, W, 3)`` uint8 sRGB (CPU).

    ab is upsampled bilinearly (as ``F.interpolate(..., align_corners=False)``) and merged with the L of
    each gray level; out-of-gamut colours are clipped as ``lab_to_rgb`` does and every channel is
    rounded exactly to 8 bits. Works in bands of about ``band_pixels`` pixels.
    """
    h, w = gray.shape
    fy_table, y_table, matrix = _merge_tables()
    base, inside = _gamma_tables()
    ab_small = ab_small.detach().float().cpu()
    # Widen once to (2, h_s, W); each band then interpolates between two of these rows.
    wide = F.interpolate(ab_small[None], size=(ab_small.shape[-2], w), mode="bilinear",
                         align_corners=False)[0]
    i0, i1, wy = _source_rows(h, ab_small.shape[-2])
    out = np.empty((h, w, 3), np.uint8)
    out_flat = out.reshape(h * w, 3)
    step = max(1, min(h, band_pixels // max(w, 1)))
    n_max = step * w
    f_buf = torch.empty(3, n_max)  # (fx, fy, fz), then in place (X / Xn, Y, Z / Zn)
    rgb_buf = torch.empty(3, n_max)
    scratch = torch.empty(3, n_max)
    mask = torch.empty(3, n_max, dtype=torch.bool)
    cell = torch.empty(3, n_max, dtype=torch.int32)
    code = np.empty((3, n_max), np.uint8)
    gray_flat = gray.reshape(-1)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        n = (r1 - r0) * w
        f, rgb, tmp, m, idx, q = f_buf[:, :n], rgb_buf[:, :n], scratch[:, :n], mask[:, :n], cell[:, :n], \
            code[:, :n]
        ab = torch.lerp(wide.index_select(1, i0[r0:r1]), wide.index_select(1, i1[r0:r1]),
                        wy[r0:r1].view(1, -1, 1)).view(2, n)
        g = gray_flat[r0 * w : r1 * w]
        np.take(fy_table, g, out=f[1].numpy())
        torch.add(f[1], ab[0], alpha=1 / 500, out=f[0])
        torch.add(f[1], ab[1], alpha=-1 / 200, out=f[2])
        f[2].clamp_min_(0)  # as scikit-image: a negative f_z (huge b) is clipped to 0
        _finv(f[0], tmp[0], m[0])
        _finv(f[2], tmp[2], m[2])
        np.take(y_table, g, out=f[1].numpy())
        torch.mm(matrix, f, out=rgb)  # linear RGB, may leave [0, 1]: clipped like lab_to_rgb
        rgb.clamp_(0, 1)
        idx.copy_(torch.mul(rgb, _GAMMA_CELLS, out=tmp))  # float -> int32 truncates: the cell index
        idx_np = idx.numpy()
        np.take(base, idx_np, out=q)
        np.greater_equal(rgb.numpy(), np.take(inside, idx_np), out=m.numpy())
        q += m.numpy()
        np.stack(q, axis=-1, out=out_flat[r0 * w : r1 * w])
    return out


def iter_winograd_convs(model: nn.Module) -> Iterator[FastConv2d]:
    """The convs of an optimised model that run through NNPACK (for reports and tests)."""
    return (m for m in model.modules() if isinstance(m, FastConv2d) and m.winograd)


__all__ = [
    "BF16_AB_TOLERANCE", "CHECK_TOLERANCE", "FastConv2d", "FastReport", "WINOGRAD_MIN_CHANNELS",
    "WINOGRAD_MIN_SIDE", "bf16_ab_error", "cached_optimize", "cpu_has_fast_bf16", "iter_winograd_convs",
    "merge_gray_ab", "nnpack_ok", "optimize", "rgb_to_gray",
]


def he_init(model: nn.Module, seed: int = 0, *, negative_bn_scales: bool = False) -> nn.Module:
    """Random weights for benchmarks and fast-path checks: He-normal convs and non-trivial BatchNorm stats.

    PyTorch's default init makes the deep Zhang nets output almost flat logits (almost gray images), which
    would hide a broken fast path and make colour-error figures meaningless. ``negative_bn_scales`` also
    draws negative BatchNorm scales, a harder case for folding. Returns ``model`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.weight.requires_grad:
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] * \
                    m.weight[0, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                if negative_bn_scales:
                    m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                    m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.weight.copy_(torch.randn(m.num_features, generator=gen))
                    m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                else:
                    m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                    m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()
