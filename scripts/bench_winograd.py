"""An experiment behind the README's 512² note, not part of the product: own Winograd F(4x4, 3x3) convs.

Usage::

    python scripts/bench_winograd.py [--threads 2] [--repeat 5]

Times the eccv16 model (width 1.0, random He weights, 256² input, like ``scripts/bench.py``) four ways:
plain eager float32; colorcore's fast copy (``colorcore.fast.optimize``: BatchNorm folding and NNPACK
Winograd); and that fast copy with its twelve 512-channel 3x3 layers replaced by a Winograd F(4x4, 3x3)
written with torch matmuls, once with the transformed kernels precomputed (``pre``: fast, but the kernels
take 36/9 = 4x the memory of the weights) and once transforming them at every call (``per-call``: no
memory). It prints median milliseconds, the max |difference| of the output against the plain model, and
the memory the precomputed kernels take. Dilated layers run as a batch of their polyphase components.
"""

from __future__ import annotations

import argparse
import statistics
import time
import types

import torch
import torch.nn.functional as F
from torch import Tensor

from colorcore import create_model
from colorcore.fast import FastConv2d, he_init, optimize

# Lavin & Gray's F(4x4, 3x3) matrices (cross-correlation form).
B_T = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float32)
G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
A_T = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float32)
KRON_G = torch.kron(G, G).float()  # (36, 9): the kernel transform as one matrix product


def transform_kernels(weight: Tensor) -> Tensor:
    """(C_out, C_in, 3, 3) -> (36, C_out, C_in), the kernels in the Winograd domain."""
    co, ci = weight.shape[:2]
    return (KRON_G @ weight.permute(2, 3, 0, 1).reshape(9, co * ci)).view(36, co, ci)


def winograd(x: Tensor, kernels: Tensor, bias: Tensor | None) -> Tensor:
    """3x3 "same" conv of ``x`` (B, C, H, W) with kernels from :func:`transform_kernels`."""
    b, c, h, w = x.shape
    nh, nw = -(-h // 4), -(-w // 4)
    tiles = F.pad(x, (1, 4 * nw + 1 - w, 1, 4 * nh + 1 - h)).unfold(2, 6, 4).unfold(3, 6, 4)
    nt = b * nh * nw
    d = tiles.permute(4, 5, 1, 0, 2, 3).reshape(6, 6 * c * nt)
    v = torch.matmul(B_T, (B_T @ d).view(6, 6, c * nt)).view(36, c, nt)
    m = torch.bmm(kernels, v)
    co = kernels.shape[1]
    y = torch.matmul(A_T, (A_T @ m.view(6, 6 * co * nt)).view(4, 6, co * nt)).view(4, 4, co, b, nh, nw)
    y = y.permute(3, 2, 4, 0, 5, 1).reshape(b, co, 4 * nh, 4 * nw)[:, :, :h, :w]
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def dilated(x: Tensor, d: int, conv) -> Tensor:
    """A dilation-d conv as an undilated one over the d x d polyphase components (sides divisible by d)."""
    b, c, h, w = x.shape
    parts = x.view(b, c, h // d, d, w // d, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, h // d, w // d)
    y = conv(parts)
    co, hh, ww = y.shape[1:]
    return y.view(b, d, d, co, hh, ww).permute(0, 3, 4, 1, 5, 2).reshape(b, co, hh * d, ww * d)


def patch(fast: torch.nn.Module, precompute: bool) -> tuple[int, int]:
    """Route the 512 -> 512 3x3 layers of ``fast`` through :func:`winograd`; (layers, kernel bytes)."""
    layers = nbytes = 0
    for mod in fast.modules():
        if not (isinstance(mod, FastConv2d) and tuple(mod.weight.shape) == (512, 512, 3, 3)):
            continue
        kernels = transform_kernels(mod.weight).contiguous() if precompute else None
        layers += 1
        nbytes += 0 if kernels is None else kernels.numel() * kernels.element_size()

        def forward(self, x: Tensor, kernels=kernels) -> Tensor:
            k = kernels if kernels is not None else transform_kernels(self.weight)
            d = self.dilation[0]
            y = winograd(x, k, self.bias) if d == 1 else dilated(x, d, lambda p: winograd(p, k, self.bias))
            if self.edge_taps is not None:  # the border fix of a folded BatchNorm, as in FastConv2d
                for rows, cols, fix in self._border(x, y):
                    y[:, :, rows, cols] += fix
            return y

        mod.forward = types.MethodType(forward, mod)
    return layers, nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = he_init(create_model("eccv16").eval())
    variants = {"plain": model, "fast (NNPACK)": optimize(model)[0]}
    for label, precompute in (("fast + Winograd pre", True), ("fast + Winograd per-call", False)):
        copy, _ = optimize(model)
        layers, nbytes = patch(copy, precompute)
        variants[label] = copy
        print(f"{label}: {layers} layers, precomputed kernels {nbytes / 2**20:.0f} MiB")
    x = torch.rand(1, 1, 256, 256) * 100
    with torch.inference_mode():
        want = model(x)
        for label, net in variants.items():
            got = net(x)  # warm-up
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
            print(f"{label:<26} {statistics.median(times) * 1000:7.0f} ms   "
                  f"max|diff| {(got - want).abs().max().item():.2e}   ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
