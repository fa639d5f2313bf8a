"""The model zoo on a GPU: procmem's DINO recipe (`configs/zoo.toml`), ported to PyTorch, one model
per data source, written as procmem model files (`procmem export` format) that the app and
`procmem eval` load like their own.

Why this exists: `procmem train` runs candle on the CPU (about 5 s per step on this project's 2-core
machine), so a zoo of seven models at a useful budget takes days there. When a GPU machine is lent,
this script trains the same architecture with the same recipe there. Everything that defines a
model is procmem's: the data are `procmem generate` sets (or, for the real-image model, random
crops of scikit-image's bundled photographs), the architecture is `cpu-tiny` with procmem's (=
DINO/timm) parameter names, and the loss, schedules and augmentation follow `src/train/`.

Deviations from `procmem train` (all for GPU batching; written into each model's train_config):
- Augmentation runs batched on the GPU in float: RandomResizedCrop by `grid_sample` (bicubic, no
  antialias, out-of-range aspect ratios clamped instead of torchvision's 10 retries); colour jitter
  in one random order per batch (torchvision: per image); no 8-bit rounding between ops.
- The data are a fixed generated set per source (`--images` per source), not an endless stream.
- Weights come back from the GPU machine in f16 (`pack`), and `unpack` widens them to f32 again.

Commands:
    python3 tools/zoo_gpu.py train --name kml-mixup --data DIR [--data DIR2 …] --steps N --out DIR
    python3 tools/zoo_gpu.py photos --out DIR --count 20000   # real-image set from skimage.data
    python3 tools/zoo_gpu.py pack IN.json OUT_DIR                # f16 copy for transfer
    python3 tools/zoo_gpu.py unpack PACKED.json OUT.json         # back to a procmem f32 model file
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------
# procmem model files


def fnv1a_fingerprint(named):
    """procmem's fingerprint (src/model/weights.rs): FNV-1a 64 over the sorted names and the f32
    little-endian bytes of every tensor."""
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    mask = (1 << 64) - 1
    for name in sorted(named):
        data = name.encode() + np.ascontiguousarray(named[name], dtype="<f4").tobytes()
        for b in data:
            h = ((h ^ b) * prime) & mask
    return f"{h:016x}"


def write_model(path_json, backbone, meta, with_fingerprint=True):
    """Writes a procmem export: `<stem>.safetensors` (teacher.backbone.* in f32) + `<stem>.json`.
    The fingerprint is pure Python (seconds per model); `unpack` computes it when skipped here."""
    from safetensors.numpy import save_file

    stem = path_json[: -len(".json")] if path_json.endswith(".json") else path_json
    tensors = {f"teacher.backbone.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in backbone.items()}
    save_file(tensors, stem + ".safetensors.tmp")
    os.replace(stem + ".safetensors.tmp", stem + ".safetensors")
    meta = dict(meta)
    named = {k: np.asarray(v, dtype=np.float32) for k, v in backbone.items()}
    meta["fingerprint"] = fnv1a_fingerprint(named) if with_fingerprint else ""
    meta["exported_backbone"] = "teacher"
    with open(stem + ".json.tmp", "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(stem + ".json.tmp", stem + ".json")
    return meta["fingerprint"]


def cmd_pack(a):
    from safetensors.numpy import load_file, save_file

    stem = a.model[: -len(".json")]
    name = os.path.basename(stem)
    tensors = load_file(stem + ".safetensors")
    save_file({k: v.astype(np.float16) for k, v in tensors.items()}, os.path.join(a.out, name + ".f16.safetensors"))
    meta = json.load(open(stem + ".json"))
    json.dump(meta, open(os.path.join(a.out, name + ".f16.json"), "w"), indent=2)


def cmd_unpack(a):
    from safetensors.numpy import load_file

    stem = a.packed[: -len(".f16.json")]
    tensors = load_file(stem + ".f16.safetensors")
    meta = json.load(open(stem + ".f16.json"))
    backbone = {k[len("teacher.backbone."):]: v.astype(np.float32) for k, v in tensors.items()}
    meta["train_config"]["transfer"] = "weights rounded to f16 for the transfer from the GPU machine, widened to f32 here"
    fp = write_model(a.out, backbone, meta)
    print(f"{a.out}: fingerprint {fp}")


# ----------------------------------------------------------------------------------------------
# Data


def load_folder(path, torch, device):
    """All PNGs of a folder (a `procmem generate` set) as one uint8 tensor [N, 3, H, W]."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    names = sorted(n for n in os.listdir(path) if n.endswith(".png"))
    if not names:
        sys.exit(f"{path}: no PNG images")

    def read(n):
        return np.asarray(Image.open(os.path.join(path, n)).convert("RGB"))

    with ThreadPoolExecutor(16) as pool:
        arrays = list(pool.map(read, names))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        sys.exit(f"{path}: images of several sizes {sorted(shapes)[:3]}")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return x.to(device), len(names)


def cmd_photos(a):
    """A real-image training set disjoint from every evaluation set: random square crops
    (side 1/8 to 1/2 of the shorter side) of scikit-image's bundled colour photographs,
    resized to `--size`. The same seed gives the same set."""
    import skimage.data as d
    from PIL import Image

    names = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "page", "camera", "moon", "text", "brick", "grass", "gravel", "clock"]
    photos = []
    used = []
    for n in names:
        try:
            img = getattr(d, n)()
        except Exception as e:  # some images are fetched on demand, and nothing can be fetched
            print(f"skip {n}: {e}", file=sys.stderr)
            continue
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(1e-9, float(img.max() - img.min()))).astype(np.uint8)
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        if min(img.shape[:2]) < 64:
            continue
        photos.append(img)
        used.append(n)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    windows = []  # drawn in order, so the set does not depend on the thread count
    for i in range(a.count):
        h, w = photos[i % len(photos)].shape[:2]
        side = int(rng.uniform(0.125, 0.5) * min(h, w))
        windows.append((i, int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side))

    def save(win):
        i, y, x, side = win
        p = photos[i % len(photos)]
        crop = Image.fromarray(np.ascontiguousarray(p[y : y + side, x : x + side])).resize((a.size, a.size), Image.BICUBIC)
        crop.save(os.path.join(a.out, f"{i:06}.png"))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(save, windows))
    json.dump({"source": "scikit-image data (skimage.data)", "images": used, "count": a.count, "size": a.size, "seed": a.seed}, open(os.path.join(a.out, "photos.json"), "w"), indent=2)
    print(f"{a.out}: {a.count} crops of {len(used)} photographs: {', '.join(used)}")


# ----------------------------------------------------------------------------------------------
# Augmentation on the GPU (DataAugmentationDINO, batched; see src/train/augment.rs)


class GpuAugment:
    def __init__(self, torch, cfg, device, generator):
        self.t = torch
        self.cfg = cfg
        self.device = device
        self.g = generator
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def rand(self, *shape):
        return self.t.rand(*shape, device=self.device, generator=self.g)

    def resized_crop(self, x, size, scale):
        t, F = self.t, self.t.nn.functional
        b = x.shape[0]
        area = scale[0] + (scale[1] - scale[0]) * self.rand(b)
        log_r = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * self.rand(b)
        ratio = t.exp(log_r)
        w = t.sqrt(area * ratio).clamp(max=1.0)  # fractions of the side
        h = t.sqrt(area / ratio).clamp(max=1.0)
        cx = (self.rand(b) * (1 - w) + w / 2) * 2 - 1
        cy = (self.rand(b) * (1 - h) + h / 2) * 2 - 1
        flip = t.where(self.rand(b) < 0.5, -1.0, 1.0)
        theta = t.zeros(b, 2, 3, device=self.device)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
        return F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False).clamp(0, 1)

    def gray(self, x):
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])

    def hue_shift(self, x, shift):
        t = self.t
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        maxc, _ = x.max(1)
        minc, _ = x.min(1)
        v = maxc
        delta = maxc - minc
        s = t.where(maxc > 0, delta / maxc.clamp(min=1e-8), t.zeros_like(maxc))
        dc = delta.clamp(min=1e-8)
        rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
        h = t.where(maxc == r, bc - gc, t.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
        h = t.where(delta > 0, (h / 6.0) % 1.0, t.zeros_like(h))
        h = (h + shift.view(-1, 1, 1)) % 1.0
        i = t.floor(h * 6.0)
        f = h * 6.0 - i
        p, q, tt = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
        i = i.long() % 6
        rgb = t.stack([t.stack([v, q, p, p, tt, v], 1), t.stack([tt, v, v, q, p, p], 1), t.stack([p, p, tt, v, v, q], 1)], 1)
        return rgb.gather(2, i.view(i.shape[0], 1, 1, *i.shape[1:]).expand(-1, 3, 1, -1, -1)).squeeze(2)

    def jitter(self, x):
        t, c = self.t, self.cfg
        b = x.shape[0]
        apply = (self.rand(b) < c["jitter_probability"]).view(-1, 1, 1, 1)
        y = x
        for op in t.randperm(4, device="cpu").tolist():
            if op == 0:
                f = (0.6 + 0.8 * self.rand(b)).view(-1, 1, 1, 1)
                y = (y * f).clamp(0, 1)
            elif op == 1:
                f = (0.6 + 0.8 * self.rand(b)).view(-1, 1, 1, 1)
                m = self.gray(y).mean((1, 2, 3), keepdim=True)
                y = (m + f * (y - m)).clamp(0, 1)
            elif op == 2:
                f = (0.8 + 0.4 * self.rand(b)).view(-1, 1, 1, 1)
                gr = self.gray(y)
                y = (gr + f * (y - gr)).clamp(0, 1)
            else:
                y = self.hue_shift(y, -0.1 + 0.2 * self.rand(b))
        x = t.where(apply, y, x)
        gray = (self.rand(b) < c["grayscale_probability"]).view(-1, 1, 1, 1)
        return t.where(gray, self.gray(x).expand(-1, 3, -1, -1), x)

    def blur(self, x, p, size, dino_size):
        t, F = self.t, self.t.nn.functional
        b = x.shape[0]
        lo, hi = self.cfg["blur_sigma"]
        sigma = (lo + (hi - lo) * self.rand(b)) * size / dino_size
        apply = (self.rand(b) < p) & (sigma >= 0.05)
        radius = max(1, math.ceil(3 * hi * size / dino_size))
        k = t.arange(-radius, radius + 1, device=self.device, dtype=x.dtype)
        w = t.exp(-(k.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        w = w / w.sum(1, keepdim=True)
        w = w.repeat_interleave(3, 0)  # one kernel per image and channel
        y = x.reshape(1, b * 3, *x.shape[2:])
        y = F.pad(y, (radius, radius, 0, 0), mode="reflect")
        y = F.conv2d(y, w.view(b * 3, 1, 1, -1), groups=b * 3)
        y = F.pad(y, (0, 0, radius, radius), mode="reflect")
        y = F.conv2d(y, w.view(b * 3, 1, -1, 1), groups=b * 3).view_as(x)
        return t.where(apply.view(-1, 1, 1, 1), y, x)

    def normalise(self, x):
        return (x - self.mean) / self.std

    def __call__(self, batch_u8):
        c = self.cfg
        x = batch_u8.float() / 255.0
        gs, ls = c["global_size"], c["local_size"]
        crops = []
        for i in range(2):
            y = self.jitter(self.resized_crop(x, gs, c["global_scale"]))
            y = self.blur(y, 1.0 if i == 0 else 0.1, gs, 224.0)
            if i == 1:
                sol = (self.rand(x.shape[0]) < c["solarize_probability"]).view(-1, 1, 1, 1)
                y = self.t.where(sol & (y >= 0.5), 1.0 - y, y)
            crops.append(self.normalise(y))
        for _ in range(c["local_crops"]):
            y = self.jitter(self.resized_crop(x, ls, c["local_scale"]))
            crops.append(self.normalise(self.blur(y, 0.5, ls, 96.0)))
        return crops


# ----------------------------------------------------------------------------------------------
# Model (src/model/vit.rs and head.rs; timm/DINO parameter names)


def build(torch, vit_cfg, head_cfg, drop_path):
    nn, F = torch.nn, torch.nn.functional

    class Attention(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.heads = heads

        def forward(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))

    class Mlp(nn.Module):
        def __init__(self, d, hidden):
            super().__init__()
            self.fc1 = nn.Linear(d, hidden)
            self.fc2 = nn.Linear(hidden, d)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, d, heads, hidden, dp):
            super().__init__()
            self.norm1 = nn.LayerNorm(d, eps=1e-6)
            self.attn = Attention(d, heads)
            self.norm2 = nn.LayerNorm(d, eps=1e-6)
            self.mlp = Mlp(d, hidden)
            self.dp = dp

        def drop(self, y):
            if not self.training or self.dp == 0:
                return y
            keep = (torch.rand(y.shape[0], 1, 1, device=y.device) >= self.dp).to(y.dtype)
            return y * keep / (1 - self.dp)

        def forward(self, x):
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.drop(self.mlp(self.norm2(x)))

    class PatchEmbed(nn.Module):
        def __init__(self, c, d, p):
            super().__init__()
            self.proj = nn.Conv2d(c, d, p, p)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class VisionTransformer(nn.Module):
        def __init__(self, cfg, dpr):
            super().__init__()
            d = cfg["embed_dim"]
            self.grid = cfg["img_size"] // cfg["patch_size"]
            self.patch_embed = PatchEmbed(cfg["in_chans"], d, cfg["patch_size"])
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
            self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2 + 1, d))
            rates = [dpr * i / max(1, cfg["depth"] - 1) for i in range(cfg["depth"])]
            self.blocks = nn.ModuleList([Block(d, cfg["num_heads"], int(d * cfg["mlp_ratio"]), r) for r in rates])
            self.norm = nn.LayerNorm(d, eps=1e-6)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

        def pos(self, g):
            if g == self.grid:
                return self.pos_embed
            d = self.pos_embed.shape[-1]
            p = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
            s = (g + 0.1) / self.grid
            p = F.interpolate(p, scale_factor=(s, s), mode="bicubic", align_corners=False)
            return torch.cat([self.pos_embed[:, :1], p.permute(0, 2, 3, 1).reshape(1, -1, d)], 1)

        def forward(self, x):
            t = self.patch_embed(x)
            g = x.shape[-1] // self.patch_embed.proj.kernel_size[0]
            t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1) + self.pos(g)
            for blk in self.blocks:
                t = blk(t)
            return self.norm(t)[:, 0]

    class DinoHead(nn.Module):
        def __init__(self, d, cfg):
            super().__init__()
            h, bn = cfg["hidden_dim"], cfg["bottleneck_dim"]
            self.mlp = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, bn))
            for m in self.mlp:
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
            self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bn, cfg["out_dim"], bias=False))
            self.last_layer.parametrizations.weight.original0.data.fill_(1)
            self.last_layer.parametrizations.weight.original0.requires_grad = not cfg["norm_last_layer"]

        def forward(self, x):
            return self.last_layer(F.normalize(self.mlp(x), dim=-1))

    class Wrapper(nn.Module):
        """DINO's MultiCropWrapper: one backbone pass per resolution."""

        def __init__(self, dpr):
            super().__init__()
            self.backbone = VisionTransformer(vit_cfg, dpr)
            self.head = DinoHead(vit_cfg["embed_dim"], head_cfg)

        def forward(self, crops):
            out = [self.backbone(torch.cat(crops[:2]))]
            if len(crops) > 2:
                out.append(self.backbone(torch.cat(crops[2:])))
            return self.head(torch.cat(out))

    return Wrapper(drop_path), Wrapper(0.0)


def cosine(base, final, steps, warmup_steps=0, start_warmup=0.0):
    """DINO's cosine_scheduler over steps, with an optional linear warm-up."""
    warm = np.linspace(start_warmup, base, warmup_steps) if warmup_steps > 0 else np.array([])
    iters = np.arange(steps - warmup_steps)
    sched = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(1, len(iters))))
    return np.concatenate([warm, sched])


def cmd_train(a):
    import torch
    import torch.nn.functional as F

    cfg = json.load(open(a.recipe))
    aug_cfg, vit_cfg, head_cfg = cfg["augment"], cfg["vit"], cfg["head"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg["seed"])

    sets, sources, procedural_only = [], [], True
    for path in a.data:
        x, n = load_folder(path, torch, device)
        sets.append(x)
        manifest = os.path.join(path, "photos.json")
        if os.path.exists(manifest):
            info = json.load(open(manifest))
            sources.append(f"real:scikit-image photographs ({', '.join(info['images'])}): {n} random crops {info['size']}x{info['size']}, seed {info['seed']}")
            procedural_only = False
        else:
            m = json.load(open(os.path.join(path, "manifest.json")))
            g = m.get("config", m).get("process", "?") if isinstance(m, dict) else "?"
            sources.append(f"procedural:{g} ({n} images generated by `procmem generate`, seed {m.get('seed', '?')}, {x.shape[-1]}x{x.shape[-1]})")
    data = torch.cat(sets)
    n_images = data.shape[0]

    student, teacher = build(torch, vit_cfg, head_cfg, cfg["drop_path_rate"])
    student, teacher = student.to(device), teacher.to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    teacher.eval()
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=0.0, fused=device.type == "cuda")

    steps, batch = a.steps, cfg["batch_size"]
    peak = cfg["base_lr"] * batch / 256
    lr = cosine(peak, cfg["min_lr"], steps, cfg["warmup_steps"])
    wd = cosine(cfg["weight_decay"], cfg["weight_decay_end"], steps)
    mom = cosine(cfg["momentum_teacher"], 1.0, steps)
    tt_warm = np.linspace(cfg["warmup_teacher_temp"], cfg["teacher_temp"], cfg["warmup_teacher_temp_steps"])
    teacher_temp = np.concatenate([tt_warm, np.full(max(0, steps - len(tt_warm)), cfg["teacher_temp"])])
    center = torch.zeros(1, head_cfg["out_dim"], device=device)
    augment = GpuAugment(torch, aug_cfg, device, gen)
    n_crops = 2 + aug_cfg["local_crops"]

    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.name)
    log = open(stem + ".metrics.jsonl", "w")
    t0 = time.time()
    for it in range(steps):
        idx = torch.randint(0, n_images, (batch,), device=device, generator=gen)
        crops = augment(data[idx])
        for i, g in enumerate(opt.param_groups):
            g["lr"] = float(lr[it])
            if i == 0:
                g["weight_decay"] = float(wd[it])
        with torch.no_grad():
            t_out = teacher(crops[:2])
        s_out = student(crops) / cfg["student_temp"]
        q = F.softmax((t_out - center) / float(teacher_temp[it]), -1).chunk(2)
        lp = F.log_softmax(s_out, -1).chunk(n_crops)
        loss, terms = 0.0, 0
        for iq in range(2):
            for v in range(n_crops):
                if v != iq:
                    loss = loss + (-q[iq] * lp[v]).sum(-1).mean()
                    terms += 1
        loss = loss / terms
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for _, p in named:  # DINO's clip_gradients: per tensor
            if p.grad is not None:
                norm = p.grad.norm()
                p.grad.mul_(torch.clamp(cfg["clip_grad"] / (norm + 1e-6), max=1.0))
        if it < cfg["freeze_last_layer_steps"]:
            for n, p in named:
                if "last_layer" in n:
                    p.grad = None
        opt.step()
        with torch.no_grad():
            m = float(mom[it])
            torch._foreach_lerp_(list(teacher.parameters()), list(student.parameters()), 1 - m)
            center.mul_(cfg["center_momentum"]).add_(t_out.mean(0, keepdim=True), alpha=1 - cfg["center_momentum"])
        if it % 25 == 0 or it == steps - 1:
            with torch.no_grad():
                probs = q[0]
                entropy = float(-(probs * probs.clamp(min=1e-12).log()).sum(-1).mean())
            elapsed = time.time() - t0
            rec = {"step": it + 1, "loss": float(loss), "lr": float(lr[it]), "teacher_entropy": entropy, "momentum": m, "images_per_s": (it + 1) * batch / elapsed, "elapsed_s": elapsed}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(f"{a.name} step {it + 1}/{steps} loss {float(loss):.4f} entropy {entropy:.3f} {rec['images_per_s']:.0f} img/s", flush=True)
    wall = time.time() - t0
    backbone = {k: v.detach().float().cpu().numpy() for k, v in teacher.backbone.state_dict().items()}
    train_config = dict(cfg)
    train_config.update({
        "trainer": "tools/zoo_gpu.py (PyTorch port of procmem's DINO recipe; see its header for the deviations)",
        "steps": steps,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "wall_seconds": round(wall, 1),
    })
    meta = {
        "format": "procmem-checkpoint",
        "version": 1,
        "vit": vit_cfg,
        "train_config": train_config,
        "step": steps,
        "seed": cfg["seed"],
        "provenance": {"sources": sources, "procedural_only": procedural_only, "images_seen": steps * batch},
        "procmem_version": "0.1.0",
    }
    fp = write_model(stem + ".json", backbone, meta, with_fingerprint=not a.skip_fingerprint)
    print(f"{stem}.json: {steps} steps in {wall:.0f} s, fingerprint {fp}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--name", required=True)
    t.add_argument("--data", action="append", required=True, help="a `procmem generate` folder or a `photos` folder; repeatable")
    t.add_argument("--recipe", default=os.path.join(os.path.dirname(__file__), "..", "configs", "zoo.json"))
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--skip-fingerprint", action="store_true", help="leave the fingerprint to `unpack` (saves seconds per model)")
    p = sub.add_parser("photos")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    k = sub.add_parser("pack")
    k.add_argument("model")
    k.add_argument("out")
    u = sub.add_parser("unpack")
    u.add_argument("packed")
    u.add_argument("out")
    a = ap.parse_args()
    {"train": cmd_train, "photos": cmd_photos, "pack": cmd_pack, "unpack": cmd_unpack}[a.cmd](a)


if __name__ == "__main__":
    main()
