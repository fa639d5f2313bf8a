"""Makes tests/fixtures/vit_micro.safetensors: a small randomly initialised ViT in PyTorch, written
with facebookresearch/dino's `vision_transformer.py` structure and parameter names, its weights,
two inputs and the reference outputs (final-norm tokens) that procmem must reproduce within 1e-4.

Run:  python3 -m pip install torch safetensors numpy && python3 tools/make_vit_fixture.py
The second input is 48x40, so the position embedding goes through DINO's bicubic
interpolation (scale factor (w0 + 0.1) / sqrt(N)).
"""
import math

import torch
import torch.nn as nn
from safetensors.torch import save_file

torch.manual_seed(0)
DIM, DEPTH, HEADS, PATCH, IMG = 32, 2, 2, 8, 32


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM, bias=True)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (c // HEADS) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(DIM, 4 * DIM)
        self.fc2 = nn.Linear(4 * DIM, DIM)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, DIM, PATCH, PATCH)


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        n = (IMG // PATCH) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, DIM) * 0.5)
        self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=1e-6)

    def interpolate_pos_encoding(self, x, w, h):
        # facebookresearch/dino vision_transformer.py
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // PATCH
        h0 = h // PATCH
        w0, h0 = w0 + 0.1, h0 + 0.1
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
            mode="bicubic",
        )
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def forward(self, x):
        b, nc, w, h = x.shape
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(b, -1, -1), t), dim=1)
        t = t + self.interpolate_pos_encoding(t, w, h)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)


model = ViT().eval()
# Non-trivial norms and biases, so every parameter matters.
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name or name.endswith("bias"):
            p.add_(torch.randn_like(p) * 0.3)
x_square = torch.randn(2, 3, IMG, IMG)
x_other = torch.randn(1, 3, 40, 48)  # 5 x 6 patches: interpolated position embedding
with torch.no_grad():
    out_square = model(x_square)
    out_other = model(x_other)
tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
save_file(tensors, "tests/fixtures/vit_micro.safetensors")
# Inputs and outputs in a file of their own: procmem refuses tensors a ViT does not use.
save_file(
    {
        "fixture.input_square": x_square,
        "fixture.output_square": out_square,
        "fixture.input_other": x_other,
        "fixture.output_other": out_other,
    },
    "tests/fixtures/vit_micro_io.safetensors",
)
print({k: tuple(v.shape) for k, v in tensors.items() if k.startswith("fixture")})

# The same weights as a facebookresearch/dino training checkpoint: `teacher` with `backbone.` and
# a head, `student` wrapped by DDP (`module.`) with different (negated) weights, so loading the
# wrong entry or keeping a prefix fails the test.
state = {k: v.detach().clone() for k, v in model.state_dict().items()}
teacher = {f"backbone.{k}": v for k, v in state.items()}
teacher["head.mlp.0.weight"] = torch.zeros(4, DIM)
student = {f"module.backbone.{k}": -v for k, v in state.items()}
torch.save({"teacher": teacher, "student": student, "epoch": 1}, "tests/fixtures/vit_micro_dino.pth")
print("wrote tests/fixtures/vit_micro_dino.pth")
