"""PyTorch counterpart of `procmem bench train`: the same DINO training step (ViT + DINO head,
2 global + n local crops, DINO loss with centring, AdamW, EMA teacher) on synthetic batches, and
forward-only embedding throughput, on the CPU with the same thread count.

Run (the CPU wheel is not on PyPI; the default wheel runs on the CPU once installed):
    python3 -m pip install torch numpy
    python3 tools/bench_train_torch.py --threads 2 --steps 5

Architecture and sizes default to procmem's `cpu-tiny` TrainConfig: 64² global / 32² local crops,
patch 8, width 192, depth 6, 3 heads, head 512 → 256 → 4096, batch 64, 6 local crops.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.heads = heads

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (d // h) ** -0.5
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, img=64, patch=8, dim=192, depth=6, heads=3):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.grid = img // patch

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        b, n, d = t.shape
        pos = self.pos
        if n != self.grid ** 2:
            g = int(math.sqrt(n))
            p = pos[:, 1:].reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
            p = F.interpolate(p, scale_factor=((g + 0.1) / self.grid,) * 2, mode="bicubic")
            pos = torch.cat([pos[:, :1], p.permute(0, 2, 3, 1).reshape(1, -1, d)], 1)
        t = torch.cat([self.cls.expand(b, -1, -1), t], 1) + pos
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]


class Head(nn.Module):
    def __init__(self, dim, out=4096, hidden=512, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last = nn.utils.weight_norm(nn.Linear(bottleneck, out, bias=False))
        self.last.weight_g.data.fill_(1)
        self.last.weight_g.requires_grad = False

    def forward(self, x):
        return self.last(F.normalize(self.mlp(x), dim=-1))


class Net(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.vit = ViT(a.global_size, a.patch, a.dim, a.depth, a.heads)
        self.head = Head(a.dim, a.out_dim)

    def forward(self, crops):
        # DINO's MultiCropWrapper: one backbone pass per resolution.
        out = [self.vit(torch.cat(crops[:2])), self.vit(torch.cat(crops[2:]))] if len(crops) > 2 else [self.vit(torch.cat(crops))]
        return self.head(torch.cat(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--global-size", type=int, default=64)
    ap.add_argument("--local-size", type=int, default=32)
    ap.add_argument("--local-crops", type=int, default=6)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--out-dim", type=int, default=4096)
    ap.add_argument("--embed-batch", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    student, teacher = Net(a), Net(a)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4 * a.batch / 256)
    center = torch.zeros(1, a.out_dim)
    b = a.batch
    crops = [torch.randn(b, 3, a.global_size, a.global_size) for _ in range(2)] + [torch.randn(b, 3, a.local_size, a.local_size) for _ in range(a.local_crops)]

    def step():
        nonlocal center
        with torch.no_grad():
            t = teacher(crops[:2])
        s = student(crops) / 0.1
        q = F.softmax((t - center) / 0.04, -1).chunk(2)
        lp = F.log_softmax(s, -1).chunk(2 + a.local_crops)
        loss, n = 0, 0
        for iq in range(2):
            for v in range(len(lp)):
                if v != iq:
                    loss = loss + (-q[iq] * lp[v]).sum(-1).mean()
                    n += 1
        loss = loss / n
        opt.zero_grad()
        loss.backward()
        for p in params:
            if p.grad is not None:
                norm = p.grad.norm()
                if norm > 3.0:
                    p.grad.mul_(3.0 / (norm + 1e-6))
        opt.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(0.996).add_(ps.detach(), alpha=0.004)
            center = 0.9 * center + 0.1 * t.mean(0, keepdim=True)

    step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {b}, crops 2x{a.global_size}² + {a.local_crops}x{a.local_size}², depth {a.depth}, out_dim {a.out_dim}")
    print(f"train step: {dt:.3f} s = {b / dt:.1f} images/s")
    x = torch.randn(a.embed_batch, 3, a.global_size, a.global_size)
    with torch.no_grad():
        student.vit(x)
        t0 = time.perf_counter()
        for _ in range(3):
            student.vit(x)
        dt = (time.perf_counter() - t0) / 3
    print(f"embedding: {a.embed_batch / dt:.1f} images/s at {a.global_size}² (batch {a.embed_batch}, forward only)")


if __name__ == "__main__":
    main()
