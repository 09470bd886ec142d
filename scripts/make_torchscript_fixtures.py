#!/usr/bin/env python3
"""Writes the TorchScript fixtures of Tests/Fixtures/torchscript/ (run once; the results are committed,
so tests never need PyTorch).

Needs a separate venv with PyTorch (never the project venv):
    python3 -m venv /work/torchvenv && /work/torchvenv/bin/pip install torch numpy
    /work/torchvenv/bin/python scripts/make_torchscript_fixtures.py

For each model: a traced and frozen archive (<name>.pt), its IR text dumps (<name>.graph.txt,
<name>.inlined_graph.txt), the input (<name>.input.npy) and PyTorch's output (<name>.output.npy).
Plus the same models traced but not frozen (cnn_unfrozen.pt, encoder_unfrozen.pt: parameters on
module objects, submodule method calls, recorded input shapes) and the bad-input fixtures.
"""
import io
import os
import struct
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "torchscript")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        x = torch.flatten(self.avg(x), 1)
        return self.fc(x)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, 2 * dim)
        self.ff2 = nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, mask):
        b, t, d = x.shape
        h = self.norm1(x)
        q = self.q(h).view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = self.k(h).view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = self.v(h).view(b, t, self.heads, d // self.heads).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        scores = scores.masked_fill(mask, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, t, d)
        x = x + self.drop(self.proj(out))
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class SmallEncoder(nn.Module):
    def __init__(self, vocab=50, dim=32, heads=4, layers=2, max_len=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        t = ids.size(1)
        positions = torch.arange(t, device=ids.device).unsqueeze(0)
        x = self.embed(ids) + self.pos(positions)
        # Causal mask from comparison ops: position j is hidden from i when j > i.
        rows = torch.arange(t).unsqueeze(1)
        cols = torch.arange(t).unsqueeze(0)
        mask = (cols > rows) & torch.ones(t, t, dtype=torch.bool)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        # The last layer's attention through the fused op, with the same mask's complement.
        q = x.unsqueeze(1)
        x = x + F.scaled_dot_product_attention(q, q, q, attn_mask=~mask).squeeze(1)
        return self.head(x)


class OpZoo(nn.Module):
    """One traced module that exercises many rows of the aten mapping table; returns them all (21)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 5))
        self.b = nn.Parameter(torch.randn(5))
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):
        a, c, d = x.shape  # 2, 3, 4
        y = x.permute(2, 0, 1).contiguous()
        idx = torch.tensor([2, 0], dtype=torch.long)
        return (
            torch.log_softmax(x, dim=1),
            F.silu(x) + F.hardswish(x) - F.hardsigmoid(x),
            F.hardtanh(x, -0.5, 0.5) * torch.clamp(x, min=-0.2) + F.relu6(x * 4),
            F.gelu(x, approximate="tanh") + torch.rsqrt(x.abs() + 1) - torch.sqrt(x * x),
            torch.sub(x, 2 * x, alpha=0.5) + torch.rsub(x, 1.0) + x.pow(2) + torch.div(x, 0.3, rounding_mode="floor"),
            x.mean(dim=(0, 2), keepdim=True) + x.sum(-1, keepdim=True),
            y.transpose(0, 1)[:, 1:4:2, :],
            x.select(2, 1) + x.index_select(2, idx).sum(-1),
            torch.gather(x, 2, torch.tensor([[[3, 0], [1, 1], [2, 0]]] * 2)),
            torch.cat([x, x * 2], dim=1).unsqueeze(0).squeeze(0),
            torch.stack([x, -x], dim=2).flatten(1, 2).unflatten(1, (3, 2)),
            x[:, :1, :].expand(a, c, d) + torch.where(x > 0, x, torch.zeros_like(x)),
            x.masked_fill(x.ge(0.5) & x.lt(1.0), 7.0),
            torch.matmul(x, self.w) + self.b,
            torch.addmm(self.b, x[0], self.w) + torch.bmm(x, x.transpose(1, 2)).sum(-1, keepdim=True)[0],
            F.avg_pool2d(x.unsqueeze(0), 2) + F.max_pool2d(x.unsqueeze(0), 2, 1, 1)[:, :, :1, :2],
            torch.arange(1, 2 * d, 2) + torch.floor_divide(torch.arange(d) * 7, 3) + x.new_ones(d, dtype=torch.long),
            x[idx.clamp(max=1)] + x.to(torch.float64).to(torch.float32),
            torch.embedding(self.w, torch.tensor([[1, 3], [0, 2]])),
            (x > 0).to(torch.float32) + (~(x < 0)).float() + x.view(-1, 4).t().sum(),
            self.mha(x, x, x, need_weights=False)[0],  # traced in eval mode: aten::_native_multi_head_attention
        )


def write_op_zoo():
    model = OpZoo().eval()
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        torch.jit.save(traced, os.path.join(OUT, "ops.pt"))
        outputs = traced(x)
    save_npy("ops.input.npy", x.numpy())
    for k, out in enumerate(outputs):
        save_npy(f"ops.output_{k}.npy", out.numpy())


def save_npy(name, array):
    np.save(os.path.join(OUT, name), array)


def write_model(name, model, example, freeze=True):
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
        if freeze:
            traced = torch.jit.freeze(traced)
        path = os.path.join(OUT, name + ".pt")
        torch.jit.save(traced, path)
        with open(os.path.join(OUT, name + ".graph.txt"), "w") as f:
            f.write(str(traced.graph))
        with open(os.path.join(OUT, name + ".inlined_graph.txt"), "w") as f:
            f.write(str(traced.inlined_graph))
        output = traced(example)
    save_npy(name + ".input.npy", example.numpy())
    save_npy(name + ".output.npy", output.numpy())


def global_pickle(module, name):
    """A protocol-2 pickle that calls `module.name('echo hi')`: must be refused, never run."""
    arg = b"echo hi"
    return (b"\x80\x02" + b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + struct.pack("<I", len(arg)) + arg + b"\x85" + b"R" + b".")


def write_bad_inputs(frozen_archive):
    with zipfile.ZipFile(frozen_archive) as z:
        members = {n: z.read(n) for n in z.namelist()}
    root = next(iter(members)).split("/")[0]

    def rewrite(out_name, replace):
        with zipfile.ZipFile(os.path.join(OUT, out_name), "w", zipfile.ZIP_STORED) as z:
            for n, data in members.items():
                data = replace(n, data)
                if data is not None:
                    z.writestr(n, data)

    # data.pkl names os.system.
    rewrite("bad_global.pt", lambda n, d: global_pickle("os", "system") if n == f"{root}/data.pkl" else d)
    # No code/ members at all.
    rewrite("no_code.pt", lambda n, d: None if "/code/" in n else d)
    # The forward method's code is cut off in the middle of a call.
    def cut(n, d):
        if n.endswith(".py") and "/code/__torch__/" in n and b"def forward" in d:
            return d[: d.index(b"def forward")] + b"def forward(self: __torch__.SmallCNN,\n    x: Tensor) -> Tensor:\n    _0 = torch.conv2d(x, CONSTANTS.c0,\n"
        return d
    rewrite("malformed_code.pt", cut)
    # Storages written on a big-endian machine.
    rewrite("big_endian.pt", lambda n, d: b"big" if n == f"{root}/byteorder" else d)
    # A pickle without a zip around it (what torch.save of a plain object writes).
    with open(os.path.join(OUT, "bad_global.pkl"), "wb") as f:
        f.write(global_pickle("os", "system"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cnn = SmallCNN()
    # Non-trivial batch-norm statistics, so folding them is tested.
    with torch.no_grad():
        cnn.bn1.running_mean.uniform_(-0.5, 0.5)
        cnn.bn1.running_var.uniform_(0.5, 1.5)
        cnn.bn1.weight.uniform_(0.5, 1.5)
        cnn.bn1.bias.uniform_(-0.2, 0.2)
    image = torch.randn(1, 3, 16, 16)
    write_model("cnn", cnn, image)
    write_model("cnn_unfrozen", cnn, image, freeze=False)

    encoder = SmallEncoder()
    ids = torch.randint(0, 50, (1, 8), dtype=torch.int64)
    write_model("encoder", encoder, ids)
    write_model("encoder_unfrozen", encoder, ids, freeze=False)

    write_op_zoo()
    write_bad_inputs(os.path.join(OUT, "cnn.pt"))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
