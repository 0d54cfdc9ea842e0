#!/usr/bin/python3
"""PyTorch reference of jade's network (docs/model.md, spec/model.md): a benchmark and a
cross-check only, never a dependency of jade. Runs with Debian's python3-torch (1.13).

  torch_jade.py check DUMPDIR MODEL.safetensors [--bf16]
      Loads jade's weights into the PyTorch model, runs the inputs written by
      build/bench_nn_dump (DUMPDIR/*.npy), and compares jade's outputs and parameter
      gradients (DUMPDIR/grads.safetensors) with PyTorch in float64. jade's error must lie
      within 10x the error of PyTorch's own float32 run of the same computation (the
      rounding noise of an independent fp32 implementation; a wrong formula gives O(1)).
      With --bf16 (a dump made with --matmul bf16) the noise scale is PyTorch's bf16
      autocast run instead. Exit 0 on agreement, 1 otherwise.
  torch_jade.py bench --config FILE --batch B [--dtype fp32|bf16] [--steps N]
                      [--sample-batch SB] [--sample-evals E] [--clock wall|cpu]
      Times one training step (forward, flow loss, backward, clip, AdamW, EMA) and one
      sampler network evaluation, like build/bench_nn, and prints a RESULT line.

The network is written functionally over a dict of tensors named exactly like jade's
safetensors (PyTorch layout: linear weights (out, in)). Attention is hand-written (1.13 has
no fused attention), softmax in fp32.
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- files
def read_safetensors(path):
    """(dict name -> float32 numpy array, metadata dict) of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy()
    return out, meta


def read_ini(path):
    """Top-level keys and [section] keys as 'section.key' (comments after '#')."""
    kv, sec = {}, ""
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                sec = line[1:-1].strip() + "."
                continue
            if "=" in line:
                k, v = line.split("=", 1)
                kv[sec + k.strip()] = v.strip()
    return kv


def config_from_ini(kv):
    g = lambda k, d: float(kv.get("model." + k, d))
    c = dict(img_size=int(kv["n_pix"]), channels=int(kv["n_bins"]), cond_channels=int(kv["n_bins"]),
             patch=int(g("patch", 8)), cond_patch=int(g("cond_patch", 0)), depth=int(g("depth", 12)),
             width=int(g("width", 768)), heads=int(g("heads", 12)),
             n_cosmo_tokens=int(g("n_cosmo_tokens", 16)), n_params=6,
             mlp_hidden=int(g("mlp_hidden", 0)), bottleneck=int(g("bottleneck", 128)),
             time_freq=int(g("time_freq", 256)), max_period=g("max_period", 1e4),
             rope_theta=g("rope_theta", 1e4), norm_eps=g("norm_eps", 1e-6), dropout=g("dropout", 0))
    return finish_config(c)


def config_from_meta(meta):
    c = {}
    for k, v in meta.items():
        if k.startswith("model."):
            c[k[6:]] = float(v) if "." in v or "e" in v else int(v)
    return finish_config(c)


def finish_config(c):
    # jade_model_config_check's derived values
    if c.get("cond_patch", 0) <= 0:
        c["cond_patch"] = c["patch"]
    if c.get("mlp_hidden", 0) <= 0:
        c["mlp_hidden"] = int(int(4 * c["width"]) * 2.0 / 3.0)
    for k in ("img_size", "channels", "cond_channels", "patch", "cond_patch", "depth", "width",
              "heads", "n_cosmo_tokens", "n_params", "mlp_hidden", "bottleneck", "time_freq"):
        c[k] = int(c[k])
    for k in ("max_period", "rope_theta", "norm_eps", "dropout"):
        c[k] = float(c.get(k, 0.0))
    return c


# ----------------------------------------------------------------------------- model
def param_shapes(c):
    """Ordered (name, shape) of jade's parameter table (src/diffusion/model.c build_table)."""
    D, F, K, P = c["width"], c["time_freq"], c["n_cosmo_tokens"], c["n_params"]
    H, bn, hd = c["mlp_hidden"], c["bottleneck"], c["width"] // c["heads"]
    ppc = c["patch"] ** 2 * c["channels"]
    ppcc = c["cond_patch"] ** 2 * c["cond_channels"]
    s = [("t_embedder.linear1.weight", (D, F)), ("t_embedder.linear1.bias", (D,)),
         ("t_embedder.linear2.weight", (D, D)), ("t_embedder.linear2.bias", (D,)),
         ("cosmo_embedder.proj.weight", (K * D, P)), ("cosmo_embedder.proj.bias", (K * D,)),
         ("cosmo_embedder.token_pos_embed", (K, D)),
         ("x_embedder.proj1.weight", (bn, ppc)), ("x_embedder.proj2.weight", (D, bn)),
         ("x_embedder.proj2.bias", (D,))]
    if c["cond_channels"] > 0:
        s += [("cond_embedder.proj1.weight", (bn, ppcc)), ("cond_embedder.proj2.weight", (D, bn)),
              ("cond_embedder.proj2.bias", (D,))]
    for l in range(c["depth"]):
        b = f"blocks.{l}."
        s += [(b + "norm1.weight", (D,)), (b + "attn.qkv.weight", (3 * D, D)), (b + "attn.qkv.bias", (3 * D,)),
              (b + "attn.q_norm.weight", (hd,)), (b + "attn.k_norm.weight", (hd,)),
              (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)), (b + "norm2.weight", (D,)),
              (b + "mlp.w12.weight", (2 * H, D)), (b + "mlp.w12.bias", (2 * H,)),
              (b + "mlp.w3.weight", (D, H)), (b + "mlp.w3.bias", (D,)),
              (b + "ada_linear.weight", (6 * D, D)), (b + "ada_linear.bias", (6 * D,))]
    s += [("field_head.norm_final.weight", (D,)), ("field_head.ada_linear.weight", (2 * D, D)),
          ("field_head.ada_linear.bias", (2 * D,)), ("field_head.linear.weight", (ppc, D)),
          ("field_head.linear.bias", (ppc,)), ("cosmo_head.norm.weight", (D,)),
          ("cosmo_head.proj.weight", (P, D)), ("cosmo_head.proj.bias", (P,))]
    return s


def random_params(c, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = {}
    for name, shape in param_shapes(c):
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "norm" in name.split(".")[-2]:
            p[name] = torch.ones(shape, dtype=dtype)
        else:
            p[name] = torch.randn(shape, generator=g, dtype=dtype) * 0.02
    return p


class Buffers:
    """Fixed tables of a configuration: 2-D sin-cos position embedding, RoPE cos/sin."""

    def __init__(self, c, dtype):
        D, p, pc, K = c["width"], c["patch"], c["cond_patch"], c["n_cosmo_tokens"]
        gf = c["img_size"] // p
        gc = c["img_size"] // pc if c["cond_channels"] > 0 else 0
        self.Tf, self.Tc, self.K = gf * gf, gc * gc, K
        self.T = K + self.Tc + self.Tf
        # MAE get_2d_sincos_pos_embed: [sin(col w), cos(col w), sin(row w), cos(row w)]
        q = D // 4
        w = 1.0 / (10000.0 ** (np.arange(q) / q))
        r, cc = np.divmod(np.arange(self.Tf), gf)
        pe = np.concatenate([np.sin(cc[:, None] * w), np.cos(cc[:, None] * w),
                             np.sin(r[:, None] * w), np.cos(r[:, None] * w)], axis=1)
        self.pos = torch.tensor(pe, dtype=dtype)
        # RoPE (JADE MultiResolutionRoPE): cosmology identity; condition patch centres
        hd = D // c["heads"]
        npair, q4 = hd // 2, hd // 4
        rows, cols, has = np.zeros(self.T), np.zeros(self.T), np.zeros(self.T, bool)
        s = pc / p
        t = np.arange(self.Tc)
        rows[K:K + self.Tc] = (t // max(gc, 1)) * s + (s - 1) / 2
        cols[K:K + self.Tc] = (t % max(gc, 1)) * s + (s - 1) / 2
        has[K:K + self.Tc] = True
        t = np.arange(self.Tf)
        rows[K + self.Tc:] = t // gf
        cols[K + self.Tc:] = t % gf
        has[K + self.Tc:] = True
        m = np.arange(npair)
        k = np.where(m < q4, m, m - q4)
        f = c["rope_theta"] ** (-2.0 * k / (hd / 2))
        ang = np.where(m[None, :] < q4, rows[:, None], cols[:, None]) * f[None, :]
        cs, sn = np.cos(ang), np.sin(ang)
        cs[~has], sn[~has] = 1.0, 0.0
        self.cos = torch.tensor(cs, dtype=dtype)  # (T, hd/2)
        self.sin = torch.tensor(sn, dtype=dtype)


def patchify(img, p):
    B, C, H, W = img.shape
    x = img.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, py, px, c)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(tok, C, H, W, p):
    B = tok.shape[0]
    x = tok.reshape(B, H // p, W // p, p, p, C).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, C, H, W)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    # pairs (2m, 2m+1) rotated by +angle; x (B, H, T, hd), cos/sin (T, hd/2)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)


def forward(p, c, buf, z, theta, t, cond, train=False):
    """x_hat (B,C,H,W), theta_hat (B,P) (spec/model.md; src/diffusion/model.c)."""
    D, K, L, nh = c["width"], c["n_cosmo_tokens"], c["depth"], c["heads"]
    hd, Hm, eps = D // nh, c["mlp_hidden"], c["norm_eps"]
    B, T = z.shape[0], buf.T
    lin = F.linear
    # time embedding [cos(t f), sin(t f)], f_j = max_period^(-j/half), then Linear-SiLU-Linear
    half = c["time_freq"] // 2
    fr = torch.exp(-math.log(c["max_period"]) * torch.arange(half, dtype=torch.float64) / half).to(t.dtype)
    arg = t[:, None] * fr[None, :]
    emb = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)
    cvec = lin(F.silu(lin(emb, p["t_embedder.linear1.weight"], p["t_embedder.linear1.bias"])),
               p["t_embedder.linear2.weight"], p["t_embedder.linear2.bias"])
    sc = F.silu(cvec)
    tok_c = lin(theta, p["cosmo_embedder.proj.weight"], p["cosmo_embedder.proj.bias"]).reshape(B, K, D)
    tok_c = tok_c + p["cosmo_embedder.token_pos_embed"]
    parts = [tok_c]
    if c["cond_channels"] > 0:
        e = lin(patchify(cond, c["cond_patch"]), p["cond_embedder.proj1.weight"])
        parts.append(lin(e, p["cond_embedder.proj2.weight"], p["cond_embedder.proj2.bias"]))
    e = lin(patchify(z, c["patch"]), p["x_embedder.proj1.weight"])
    parts.append(lin(e, p["x_embedder.proj2.weight"], p["x_embedder.proj2.bias"]) + buf.pos.to(e.dtype))
    x = torch.cat(parts, dim=1)
    cos, sin = buf.cos.to(x.dtype), buf.sin.to(x.dtype)
    pdrop = c["dropout"] if train else 0.0
    for l in range(L):
        b = f"blocks.{l}."
        dl = pdrop if (L // 4 <= l < 3 * (L // 4)) else 0.0
        ada = lin(sc, p[b + "ada_linear.weight"], p[b + "ada_linear.bias"])[:, None, :]
        sh1, s1, g1, sh2, s2, g2 = ada.chunk(6, dim=-1)
        h = rmsnorm(x, p[b + "norm1.weight"], eps) * (1 + s1) + sh1
        qkv = lin(h, p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"]).reshape(B, T, 3, nh, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, H, T, hd) each
        q = rope(rmsnorm(q, p[b + "attn.q_norm.weight"], eps), cos, sin)
        k = rope(rmsnorm(k, p[b + "attn.k_norm.weight"], eps), cos, sin)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        a = torch.softmax(s, dim=-1, dtype=torch.float32).to(v.dtype)
        if dl:
            a = F.dropout(a, dl, True)
        o = torch.matmul(a, v).transpose(1, 2).reshape(B, T, D)
        po = lin(o, p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
        if dl:
            po = F.dropout(po, dl, True)
        x = x + g1 * po
        h = rmsnorm(x, p[b + "norm2.weight"], eps) * (1 + s2) + sh2
        h12 = lin(h, p[b + "mlp.w12.weight"], p[b + "mlp.w12.bias"])
        hs = F.silu(h12[..., :Hm]) * h12[..., Hm:]
        if dl:
            hs = F.dropout(hs, dl, True)
        x = x + g2 * lin(hs, p[b + "mlp.w3.weight"], p[b + "mlp.w3.bias"])
    adaf = lin(sc, p["field_head.ada_linear.weight"], p["field_head.ada_linear.bias"])[:, None, :]
    xf = x[:, K + buf.Tc:]
    mf = rmsnorm(xf, p["field_head.norm_final.weight"], eps) * (1 + adaf[..., D:]) + adaf[..., :D]
    out = lin(mf, p["field_head.linear.weight"], p["field_head.linear.bias"])
    x_hat = unpatchify(out, c["channels"], c["img_size"], c["img_size"], c["patch"])
    pooled = rmsnorm(x[:, :K].mean(dim=1), p["cosmo_head.norm.weight"], eps)
    theta_hat = lin(pooled, p["cosmo_head.proj.weight"], p["cosmo_head.proj.bias"])
    return x_hat, theta_hat


def forward_flops(c, B):
    """jade_model_forward_flops: matmul + attention FLOPs of one forward pass."""
    D, Hm, bn = c["width"], c["mlp_hidden"], c["bottleneck"]
    buf_T = c["n_cosmo_tokens"] + (c["img_size"] // c["patch"]) ** 2 + \
        ((c["img_size"] // c["cond_patch"]) ** 2 if c["cond_channels"] else 0)
    Tf, Tc = (c["img_size"] // c["patch"]) ** 2, buf_T - c["n_cosmo_tokens"] - (c["img_size"] // c["patch"]) ** 2
    ppc, ppcc = c["patch"] ** 2 * c["channels"], c["cond_patch"] ** 2 * c["cond_channels"]
    N, Nf, Nc, T, hd = B * buf_T, B * Tf, B * Tc, buf_T, D // c["heads"]
    f = 2.0 * B * (c["time_freq"] * D + D * D) + 2.0 * B * c["n_params"] * c["n_cosmo_tokens"] * D
    f += 2.0 * Nf * (ppc * bn + bn * D) + 2.0 * Nc * (ppcc * bn + bn * D)
    blk = 2.0 * N * (D * 3 * D + D * D + D * 2 * Hm + Hm * D) + 2.0 * B * D * 6 * D \
        + 4.0 * B * c["heads"] * T * T * hd
    f += c["depth"] * blk
    f += 2.0 * B * D * 2 * D + 2.0 * Nf * D * ppc + 2.0 * B * D * c["n_params"]
    return f


# ----------------------------------------------------------------------------- check
def rel(a, ref):
    d = float(np.linalg.norm((a - ref).ravel()))
    n = float(np.linalg.norm(ref.ravel()))
    return d / n if n > 0 else d


def check(dump, model_path, ref="fp32"):
    w, meta = read_safetensors(model_path)
    c = config_from_meta(meta)
    if c["dropout"] > 0:
        print("check: the model has dropout; use a model without")
        return 1
    ld = lambda n: np.load(os.path.join(dump, n + ".npy"))
    inp = {k: ld(k) for k in ("z", "theta", "t", "cond", "gx", "gt")}
    jx, jth, jxi, jthi = ld("x_hat"), ld("theta_hat"), ld("x_hat_inf"), ld("theta_hat_inf")
    jg, _ = read_safetensors(os.path.join(dump, "grads.safetensors"))
    res = {}
    for dt in (torch.float64, torch.float32):
        p = {k: torch.tensor(v, dtype=dt, requires_grad=True) for k, v in w.items()}
        buf = Buffers(c, dt)
        T = {k: torch.tensor(v, dtype=dt) for k, v in inp.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dt == torch.float32 and ref == "bf16")):
            xh, th = forward(p, c, buf, T["z"], T["theta"], T["t"], T["cond"])
        L = (xh.float() * T["gx"]).sum() + (th.float() * T["gt"]).sum()
        L.backward()
        res[dt] = (xh.detach().double().numpy(), th.detach().double().numpy(),
                   {k: v.grad.double().numpy() for k, v in p.items()})
    x64, t64, g64 = res[torch.float64]
    x32, t32, g32 = res[torch.float32]  # PyTorch fp32, or bf16 autocast with ref == "bf16"
    ok = True
    FACTOR, FLOOR = 10.0, 1e-6

    def verdict(name, ej, et):
        nonlocal ok
        bound = FACTOR * et + FLOOR
        good = np.isfinite(ej) and ej <= bound
        ok &= bool(good)
        return good, bound

    rn = "float32" if ref == "fp32" else "bf16 autocast"
    print(f"check: model {model_path} ({c['depth']} blocks, D {c['width']}), batch {jx.shape[0]}; "
          f"relative L2 error vs PyTorch float64 (bound {FACTOR:g} x PyTorch {rn}'s + {FLOOR:g})")
    for name, j, r64, r32 in (("x_hat", jx, x64, x32), ("theta_hat", jth, t64, t32),
                              ("x_hat (inference)", jxi, x64, x32), ("theta_hat (inference)", jthi, t64, t32)):
        ej, et = rel(j.astype(np.float64), r64), rel(r32, r64)
        good, bound = verdict(name, ej, et)
        print(f"  {name:24s} jade {ej:.2e}  torch {ref} {et:.2e}  {'ok' if good else 'FAIL'}")
    worst, nbad = (0.0, ""), 0
    for name in g64:
        if name not in jg:
            print(f"  gradient {name}: missing from jade's dump")
            ok = False
            continue
        ej, et = rel(jg[name].astype(np.float64), g64[name]), rel(g32[name], g64[name])
        good, bound = verdict(name, ej, et)
        if not good:
            nbad += 1
            print(f"  gradient {name:40s} jade {ej:.2e}  torch {ref} {et:.2e}  FAIL")
        if ej / bound > worst[0]:
            worst = (ej / bound, f"{name}: jade {ej:.2e}, torch {ref} {et:.2e}")
    print(f"  gradients of {len(g64)} tensors: {len(g64) - nbad} within bound; closest to it "
          f"({worst[0]:.2f} of the bound) {worst[1]}")
    print("check: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


# ----------------------------------------------------------------------------- bench
def clock_fn(kind):
    """Wall time, or ("cpu") process CPU time / threads (machines shared with other jobs)."""
    if kind == "cpu":
        nt = torch.get_num_threads()
        return lambda: time.process_time() / nt
    return time.perf_counter


def bench(args):
    now = clock_fn(args.get("clock", "wall"))
    kv = read_ini(args["config"])
    c = config_from_ini(kv)
    B, dtype = int(args["batch"]), args.get("dtype", "fp32")
    steps, SB, evals = int(args.get("steps", 5)), int(args.get("sample_batch", 64)), int(args.get("sample_evals", 4))
    torch.manual_seed(0)
    p = random_params(c)
    for v in p.values():
        v.requires_grad_(True)
    buf = Buffers(c, torch.float32)
    nx = c["channels"] * c["img_size"] ** 2
    nc = c["cond_channels"] * c["img_size"] ** 2
    P = c["n_params"]
    ac = torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16"))
    opt = torch.optim.AdamW(list(p.values()), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    ema = [v.detach().clone() for v in p.values()]
    plist = list(p.values())
    x, eps_ = torch.randn(B, nx), torch.randn(B, nx)
    th, eth = torch.randn(B, P), torch.randn(B, P)
    cond = torch.randn(B, c["cond_channels"], c["img_size"], c["img_size"])
    t = torch.sigmoid((torch.randn(B) - 0.8) * 0.8)
    z = (t[:, None] * x + (1 - t[:, None]) * eps_)
    zt = t[:, None] * th + (1 - t[:, None]) * eth
    den = torch.clamp(1 - t, min=0.05)[:, None]
    times = []
    for s in range(steps + 1):  # step 0: warm-up
        t0 = now()
        with ac:
            xh, thh = forward(p, c, buf, z.reshape(B, c["channels"], c["img_size"], c["img_size"]), zt, t, cond, True)
        e1 = (x - xh.float().reshape(B, nx)) / den
        e2 = (th - thh.float()) / den
        loss = ((e1 ** 2).sum(1) + (e2 ** 2).sum(1)).mean() / (nx + P)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, 0.9996)
            torch._foreach_add_(ema, [v.detach() for v in plist], alpha=0.0004)
        if s > 0:
            times.append(now() - t0)
    times.sort()
    best, med = times[0], times[len(times) // 2]
    gf_train = 3.0 * forward_flops(c, B) / best / 1e9
    # sampler: Heun step = 2 evaluations (+ axpys), per-evaluation time = step / 2
    per_eval = float("inf")
    if evals > 0:
        zs = torch.randn(SB, c["channels"], c["img_size"], c["img_size"])
        ts = torch.randn(SB, P)
        cs = torch.randn(SB, c["cond_channels"], c["img_size"], c["img_size"])
        with torch.no_grad(), ac:
            for i in range(evals // 2 + 1):
                t0 = now()
                t_a = torch.full((SB,), 0.01 * i)
                xa, ta = forward(p, c, buf, zs, ts, t_a, cs)
                va, vta = (xa.float() - zs) / 0.99, (ta.float() - ts) / 0.99
                ze, tze = zs + 0.01 * va, ts + 0.01 * vta
                xb, tb = forward(p, c, buf, ze, tze, t_a + 0.01, cs)
                zs = zs + 0.005 * (va + (xb.float() - ze) / 0.98)
                ts = ts + 0.005 * (vta + (tb.float() - tze) / 0.98)
                dt = (now() - t0) / 2
                if i > 0:
                    per_eval = min(per_eval, dt)
    per_draw = per_eval * 255 / SB
    gf_eval = forward_flops(c, SB) / per_eval / 1e9
    nparam = sum(v.numel() for v in plist)
    print(f"torch {torch.__version__} {dtype}, {torch.get_num_threads()} threads: "
          f"{nparam / 1e6:.2f}M params, batch {B}: {B / best:.2f} samples/s (best of {steps}, median "
          f"{B / med:.2f}), {gf_train:.1f} GFLOP/s; sampling batch {SB}: {per_eval:.4f} s per evaluation, "
          f"{per_draw:.3f} s per draw at 128 Heun steps, {gf_eval:.1f} GFLOP/s")
    print(f"RESULT train_sps={B / best:.4f} train_gflops={gf_train:.2f} eval_s={per_eval:.6f} "
          f"draw_s={per_draw:.5f} eval_gflops={gf_eval:.2f}")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "check":
        ref = "bf16" if "--bf16" in argv[3:] else "fp32"
        return check(argv[1], argv[2], ref)
    if argv and argv[0] == "bench":
        args, i = {}, 1
        while i < len(argv):
            if not argv[i].startswith("--") or i + 1 >= len(argv):
                print(f"torch_jade.py: bad argument {argv[i]}", file=sys.stderr)
                return 2
            args[argv[i][2:].replace("-", "_")] = argv[i + 1]
            i += 2
        if "config" not in args or "batch" not in args:
            print("torch_jade.py bench: --config and --batch are required", file=sys.stderr)
            return 2
        return bench(args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    nt = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(nt)
    sys.exit(main(sys.argv[1:]))
