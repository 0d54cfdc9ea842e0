#!/usr/bin/env python3
"""Small fake pop-cosmos population-model files in torch.save's format, without PyTorch, for
tests/test_sed_ptconvert.c and tests/test_sed_cli.sh (jade sed convert-pt).

torch.save (PyTorch >= 1.6) writes a zip of STORED entries: ARCHIVE/data.pkl (the object graph,
pickle protocol 2), ARCHIVE/data/<key> (raw little-endian storages), ARCHIVE/version,
ARCHIVE/byteorder. Tensors are pickled as torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, OrderedDict()) with the storage as the persistent id ('storage',
torch.FloatStorage, key, 'cpu', numel); parameters as torch._utils._rebuild_parameter(tensor,
requires_grad, OrderedDict()); nn.Modules as NEWOBJ + BUILD of their __dict__ (training,
_parameters, _buffers, _modules, hooks...). Fake modules named like torch's, flowfusion's and
pop_cosmos's are registered in sys.modules so that pickle writes the same GLOBALs.

Writes (run from this folder: /usr/bin/python3 make_fake_pt.py; outputs are committed):
  fake_tanh.pt   CatalogueGenerator, archive prefix "archive", float32, Tanh, no_sigma True,
                 beta_max an int (20)
  fake_silu.pt   a bare PopulationModelDiffusion, prefix "catalogueModelT25", float64 storages,
                 SiLU, no_sigma False, shift and scale views of one shared storage, NN.1.weight
                 a transposed (non-contiguous) view
  fake_*_expected.txt   every tensor and scalar the converter reads (exact decimal values) and
                 scores s(t, x) at a few points computed here with plain float64 math
  bad_deflate.pt (compressed entry), bad_missing.pt (NN.1.bias absent), bad_short.pt (W extent
  past its storage), bad_opcode.pt (unknown pickle opcode 0xff), bad_sde.pt (VESDE),
  bad_act.pt (ReLU)
"""
import collections
import math
import pickle
import random
import struct
import sys
import types
import zipfile


def module(name):
    m = types.ModuleType(name)
    sys.modules[name] = m
    return m


torch = module("torch")
torch_utils = module("torch._utils")
for name in ["torch.nn", "torch.nn.modules"]:
    module(name)
nn_linear = module("torch.nn.modules.linear")
nn_container = module("torch.nn.modules.container")
nn_activation = module("torch.nn.modules.activation")
module("flowfusion")
ff = module("flowfusion.diffusion")
module("pop_cosmos")
pc = module("pop_cosmos.catalogue")


def cls(mod, name, base=object):
    c = type(name, (base,), {"__module__": mod.__name__})
    c.__qualname__ = name
    setattr(mod, name, c)
    return c


def func(mod, name):
    def f(*a):
        raise RuntimeError("never called")
    f.__module__ = mod.__name__
    f.__qualname__ = f.__name__ = name
    setattr(mod, name, f)
    return f


FloatStorage = cls(torch, "FloatStorage")
DoubleStorage = cls(torch, "DoubleStorage")
rebuild_tensor_v2 = func(torch_utils, "_rebuild_tensor_v2")
rebuild_parameter = func(torch_utils, "_rebuild_parameter")


class Storage:
    def __init__(self, key, values, fmt):
        self.key, self.values, self.fmt = key, values, fmt

    def raw(self):
        return struct.pack("<%d%s" % (len(self.values), self.fmt), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, proto):
        return (rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False,
                                    collections.OrderedDict()))


class Parameter:
    def __init__(self, tensor, requires_grad=True):
        self.tensor, self.requires_grad = tensor, requires_grad

    def __reduce_ex__(self, proto):
        return (rebuild_parameter, (self.tensor, self.requires_grad, collections.OrderedDict()))


class ModuleBase:
    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = collections.OrderedDict()
        d["_buffers"] = collections.OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_backward_hooks"] = collections.OrderedDict()
        d["_forward_hooks"] = collections.OrderedDict()
        d["_forward_pre_hooks"] = collections.OrderedDict()
        d["_state_dict_hooks"] = collections.OrderedDict()
        d["_load_state_dict_pre_hooks"] = collections.OrderedDict()
        d["_modules"] = collections.OrderedDict()


# ModuleBase must not appear in the pickle: every real class is created with its own module
Linear = cls(nn_linear, "Linear", ModuleBase)
ModuleList = cls(nn_container, "ModuleList", ModuleBase)
Tanh = cls(nn_activation, "Tanh", ModuleBase)
SiLU = cls(nn_activation, "SiLU", ModuleBase)
ReLU = cls(nn_activation, "ReLU", ModuleBase)
MLP = cls(ff, "MLP", ModuleBase)
ScoreModel = cls(ff, "ScoreModel", ModuleBase)
VPSDE = cls(ff, "VPSDE", ModuleBase)
VESDE = cls(ff, "VESDE", ModuleBase)
PopulationModelDiffusion = cls(ff, "PopulationModelDiffusion", ModuleBase)
CatalogueGenerator = cls(pc, "CatalogueGenerator", ModuleBase)

F32_PI = struct.unpack("<f", struct.pack("<f", math.pi))[0]


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


class Builder:
    """Storages with keys "0", "1", ... and tensors over them."""

    def __init__(self, fmt):
        self.fmt, self.storages = fmt, []

    def storage(self, values):
        s = Storage(str(len(self.storages)), list(values), self.fmt)
        self.storages.append(s)
        return s

    def tensor(self, values, shape):
        """contiguous tensor of its own storage"""
        stride, acc = [], 1
        for n in reversed(shape):
            stride.insert(0, acc)
            acc *= n
        return Tensor(self.storage(values), 0, shape, stride)


def make_model(rng, b, dim, n_freq, width, n_hidden, act, no_sigma, beta_max, sde_cls=VPSDE, variant=""):
    cast = f32 if b.fmt == "f" else float
    exp = {}
    W = [cast(rng.gauss(0, 4)) for _ in range(n_freq)]
    exp["W"] = ([n_freq], W)
    dims = [2 * n_freq + dim] + [width] * n_hidden + [dim]
    layers = ModuleList()
    for l in range(len(dims) - 1):
        lin = Linear()
        nin, nout = dims[l], dims[l + 1]
        bound = 1 / math.sqrt(nin)
        w = [cast(rng.uniform(-bound, bound) * 2) for _ in range(nin * nout)]  # (out, in) row-major
        bb = [cast(rng.uniform(-bound, bound)) for _ in range(nout)]
        if variant == "silu" and l == 1:
            # stored transposed: storage holds (in, out) row-major, the tensor is its .t() view
            wt = [w[o * nin + i] for i in range(nin) for o in range(nout)]
            wtensor = Tensor(b.storage(wt), 0, (nout, nin), (1, nout))
        else:
            wtensor = b.tensor(w, (nout, nin))
        lin._parameters["weight"] = Parameter(wtensor)
        if not (variant == "missing" and l == 1):
            lin._parameters["bias"] = Parameter(b.tensor(bb, (nout,)))
        lin.in_features, lin.out_features = nin, nout
        layers._modules[str(l)] = lin
        exp["NN.%d.weight" % l] = ([nout, nin], w)
        exp["NN.%d.bias" % l] = ([nout], bb)
    mlp = MLP()
    mlp.n_dimensions, mlp.n_conditionals, mlp.architecture, mlp.n_layers = dim, 0, dims, len(dims) - 1
    mlp._modules["NN"] = layers
    if variant == "short":
        st = b.storage(W[: n_freq // 2])  # the storage holds half of W's extent
        mlp._parameters["W"] = Parameter(Tensor(st, 0, (n_freq,), (1,)), requires_grad=False)
    else:
        mlp._parameters["W"] = Parameter(b.tensor(W, (n_freq,)), requires_grad=False)
    mlp._modules["activation"] = act()
    mlp._buffers["pi"] = Tensor(Builder.storage(b, [F32_PI]), 0, (), ())
    shift = [cast(rng.gauss(0, 2)) for _ in range(dim)]
    scale = [cast(rng.uniform(0.5, 3)) for _ in range(dim)]
    shift[0], scale[0] = 18.0, 1.0  # N (magnitude offset) near real galaxies', so mocks stay finite
    exp["shift"] = ([dim], shift)
    exp["scale"] = ([dim], scale)
    sde = sde_cls()
    beta_min, T, eps = 0.1, 1.0, f32(1e-3)
    sde.beta_min, sde.beta_max, sde.T = beta_min, beta_max, T
    sde._buffers["epsilon"] = Tensor(b.storage([eps]), 0, (), ())
    if sde_cls is VESDE:
        sde.sigma_min, sde.sigma_max = 0.01, 10.0
    exp["beta_min"], exp["beta_max"], exp["T"], exp["eps"] = beta_min, float(beta_max), T, eps
    exp["no_sigma"] = 1 if no_sigma else 0
    exp["pi"] = F32_PI
    sm = ScoreModel()
    sm._modules["model"] = mlp
    sm._modules["sde"] = sde
    sm.conditional, sm.no_sigma, sm.prob, sm.hutch = None, no_sigma, False, False
    pop = PopulationModelDiffusion()
    pop._modules["model"] = mlp
    pop._modules["sde"] = sde
    pop._modules["score_model"] = sm
    if variant == "silu":  # shift and scale: views of one shared storage
        st = b.storage(shift + scale)
        pop._buffers["shift"] = Tensor(st, 0, (dim,), (1,))
        pop._buffers["scale"] = Tensor(st, dim, (dim,), (1,))
    else:
        pop._buffers["shift"] = b.tensor(shift, (dim,))
        pop._buffers["scale"] = b.tensor(scale, (dim,))
    pop.method, pop.options = "dopri5", {"min_step": 1e-6}
    # scores at a few points, plain float64 math in jade's operation order
    act_f = (lambda z: math.tanh(z)) if act is Tanh else (lambda z: z / (1 + math.exp(-z)))
    pts = []
    for k in range(4):
        t = [0.001, 0.1, 0.5, 1.0][k]
        x = [rng.gauss(0, 1) for _ in range(dim)]
        h = [math.sin(t * w * 2.0 * F32_PI) for w in W] + [math.cos(t * w * 2.0 * F32_PI) for w in W] + x
        for l in range(len(dims) - 1):
            w, bb = exp["NN.%d.weight" % l][1], exp["NN.%d.bias" % l][1]
            z = [sum(w[o * dims[l] + i] * h[i] for i in range(dims[l])) + bb[o] for o in range(dims[l + 1])]
            h = [act_f(v) for v in z] if l < len(dims) - 2 else z
        if not no_sigma:
            B = beta_min * t + 0.5 * (beta_max - beta_min) * t * t / T
            sd = math.sqrt(-math.expm1(-B))
            h = [v / sd for v in h]
        pts.append((t, x, h))
    return pop, exp, pts


def catalogue(pop, b):
    cg = CatalogueGenerator()
    cg._modules["population_model"] = pop
    cg._buffers["zero_points"] = b.tensor([1.0 + 0.01 * i for i in range(26)], (26,))
    cg.n_bands, cg.name, cg.flags = 26, "T25", [1, 2, None, (3.5, "x")]
    return cg


def write_pt(path, obj, b, prefix="archive", deflate=None, corrupt_opcode=False):
    import io
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)

    def persistent_id(o):
        if isinstance(o, Storage):
            return ("storage", FloatStorage if o.fmt == "f" else DoubleStorage, o.key, "cpu", len(o.values))
        return None

    p.persistent_id = persistent_id
    p.dump(obj)
    pkl = buf.getvalue()
    if corrupt_opcode:
        pkl = pkl[:2] + b"\xff" + pkl[2:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        def add(name, data, method=zipfile.ZIP_STORED):
            zi = zipfile.ZipInfo(prefix + "/" + name, date_time=(2025, 6, 17, 0, 0, 0))
            zi.compress_type = method
            z.writestr(zi, data)
        add("data.pkl", pkl, zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
        add("byteorder", b"little")
        for s in b.storages:
            add("data/" + s.key, s.raw())
        add("version", b"3\n")


def write_expected(path, exp, pts):
    with open(path, "w") as f:
        f.write("# tensors: name ndim shape... values... ; scalars: name value ; score t x[dim] score[dim]\n")
        for k, v in exp.items():
            if isinstance(v, tuple):
                shape, vals = v
                f.write("tensor %s %d %s %s\n" % (k, len(shape), " ".join(map(str, shape)),
                                                 " ".join(repr(float(x)) for x in vals)))
            else:
                f.write("scalar %s %s\n" % (k, repr(float(v))))
        for t, x, s in pts:
            f.write("score %r %s %s\n" % (t, " ".join(repr(v) for v in x), " ".join(repr(v) for v in s)))


def main():
    dim, n_freq, width, n_hidden = 16, 4, 8, 2
    b = Builder("f")
    pop, exp, pts = make_model(random.Random(1), b, dim, n_freq, width, n_hidden, Tanh, True, 20)
    write_pt("fake_tanh.pt", catalogue(pop, b), b)
    write_expected("fake_tanh_expected.txt", exp, pts)

    b = Builder("d")
    pop, exp, pts = make_model(random.Random(2), b, dim, n_freq, width, n_hidden, SiLU, False, 18.5, variant="silu")
    write_pt("fake_silu.pt", pop, b, prefix="catalogueModelT25")
    write_expected("fake_silu_expected.txt", exp, pts)

    def bad(name, **kw):
        b = Builder("f")
        args = dict(act=Tanh, sde_cls=VPSDE, variant="")
        wkw = {}
        for k in ("deflate", "corrupt_opcode"):
            if k in kw:
                wkw[k] = kw.pop(k)
        args.update(kw)
        pop, _, _ = make_model(random.Random(3), b, dim, n_freq, width, n_hidden, args["act"], True, 20,
                               sde_cls=args["sde_cls"], variant=args["variant"])
        write_pt(name, catalogue(pop, b), b, **wkw)

    bad("bad_deflate.pt", deflate=True)
    bad("bad_missing.pt", variant="missing")
    bad("bad_short.pt", variant="short")
    bad("bad_opcode.pt", corrupt_opcode=True)
    bad("bad_sde.pt", sde_cls=VESDE)
    bad("bad_act.pt", act=ReLU)


if __name__ == "__main__":
    main()
