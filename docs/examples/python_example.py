"""jade from Python, top to bottom (docs/python_example.md): simulate an observation with the
'small' preset, draw posterior samples of the maps and the cosmology with the shipped model
models/small, plot the truth, posterior mean and standard deviation maps, run a short NUTS
chain on the same observation (the explicit log-normal field-level baseline), and overlay
both posteriors of (Omega_m, sigma_8, S_8, w_0) in a corner plot.

    python3 docs/examples/python_example.py OUT [--quick]

writes OUT/obs.fits (and its truth), OUT/posterior/ (the files of `jade sample`),
OUT/nuts/ (those of `jade mcmc`), OUT/maps.png and OUT/corner.png. --quick uses tiny sizes
(a few draws and iterations: seconds, for the test suite; the figures then show nothing).
Needs Debian's python3-numpy and python3-matplotlib, and a built libjade.so (scripts/build.sh)."""
import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))  # the package of this source tree
import jade  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

PARAMS = ("Omega_m", "sigma_8", "S_8", "w_0")
LABELS = {"Omega_m": r"$\Omega_m$", "sigma_8": r"$\sigma_8$", "S_8": r"$S_8$", "w_0": r"$w_0$"}


def progress_line(what):
    """a progress callback printing one overwritten line"""
    def show(p):
        if "steps_done" in p:  # posterior sampling (jade_progress)
            left = "%.0f s left" % p["eta"] if np.isfinite(p["eta"]) else "..."
            msg = "step %d/%d, %s" % (p["steps_done"], p["steps_total"], left)
        else:  # NUTS (jade_mcmc_progress)
            msg = "iteration %d/%d, %.1f it/s, %d divergent" % (p["iteration"], p["warmup"] + p["samples"], p["rate"],
                                                                   p["divergent"])
        print("\r%s: %s   " % (what, msg), end="", file=sys.stderr, flush=True)
    return show


def derived(theta):
    """Omega_m and S_8 of theta (6,): the columns jade adds"""
    om = theta[0] + theta[1]
    return {"Omega_c": theta[0], "Omega_b": theta[1], "sigma_8": theta[2], "h": theta[3], "n_s": theta[4], "w_0": theta[5],
            "Omega_m": om, "S_8": theta[2] * np.sqrt(om / 0.3)}


def plot_maps(path, kappa_true, kappa_obs, mean, sd):
    nb = kappa_true.shape[0]
    rows = (("truth", kappa_true), ("observation", kappa_obs), ("posterior mean", mean), ("posterior sd", sd))
    lim = np.percentile(np.abs(kappa_true), 99)  # one colour scale for truth, observation and mean
    fig, axes = plt.subplots(len(rows), nb, figsize=(1.8 * nb + 0.8, 1.8 * len(rows) + 0.4), squeeze=False,
                             constrained_layout=True)
    for r, (name, m) in enumerate(rows):
        for b in range(nb):
            ax = axes[r, b]
            if name == "posterior sd":
                im = ax.imshow(m[b], cmap="magma", origin="lower", vmin=0, vmax=sd.max())
            else:
                im = ax.imshow(m[b], cmap="RdBu_r", origin="lower", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title("bin %d" % (b + 1), fontsize=9)
        fig.colorbar(im, ax=list(axes[r]), fraction=0.015, pad=0.01).ax.tick_params(labelsize=6)
    fig.suptitle(r"convergence $\kappa$: truth, noisy observation, and the diffusion posterior", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_corner(path, samples, truth):
    """samples: [(label, colour, {param: values}, weights or None)]; a lower-triangle corner
    plot: 1-D histograms on the diagonal, points below"""
    n = len(PARAMS)
    fig, axes = plt.subplots(n, n, figsize=(7, 7))
    for i, pi in enumerate(PARAMS):
        for j, pj in enumerate(PARAMS):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            for label, colour, cols, w in samples:
                if i == j:
                    ax.hist(cols[pi], bins=25, weights=w, density=True, histtype="step", color=colour, label=label)
                else:
                    ax.scatter(cols[pj], cols[pi], s=3, alpha=0.35, color=colour, linewidths=0)
            ax.axvline(truth[pj], color="k", lw=0.8, ls="--")
            if i != j:
                ax.axhline(truth[pi], color="k", lw=0.8, ls="--")
                ax.plot(truth[pj], truth[pi], "k+", ms=8)
            else:
                ax.set_yticks([])
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(LABELS[pj])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(LABELS[pi])
            elif i != j:
                ax.set_yticklabels([])
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.3, 1.0), fontsize=8, frameon=False)
    fig.suptitle("posterior of one observation (dashed: the truth)", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds): for the test suite")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    q = args.quick
    t0 = time.time()

    # 1. an observation: the 'small' preset (5 bins of 32 x 32 pixels, 5 x 5 deg, LSST Y10
    #    noise) at its fiducial cosmology, and the noise-free truth beside it
    cfg = jade.Config("small")
    obs = os.path.join(args.out, "obs.fits")
    jade.observe(cfg, 42, obs)
    theta_true, kappa_true = jade.read_truth(os.path.join(args.out, "obs_truth.fits"))
    kappa_obs = jade.read_observation(obs)["kappa"]
    truth = derived(theta_true)

    # 2. the diffusion posterior: joint draws of the maps and theta with the shipped model
    model = jade.Model(os.path.join(REPO, "models", "small"))
    print("model %s: %d bins of %d x %d pixels, %.1f deg, %d weights, %d training steps"
          % (model.path, model.n_bins, model.n_pix, model.n_pix, model.size_deg, model.num_params, model.step))
    post = model.sample(obs, draws=4 if q else 256, steps=2 if q else 16, solver="dpm2m", seed=1,
                        progress=progress_line("posterior"), out=os.path.join(args.out, "posterior"))
    print(file=sys.stderr)
    for name in PARAMS:
        s = post.summary[name]
        print("diffusion  %-8s %.4f +- %.4f   (truth %.4f)" % (name, s["mean"], s["std"], truth[name]))
    mean, sd = post.map_moments()
    plot_maps(os.path.join(args.out, "maps.png"), kappa_true, kappa_obs, mean, sd)

    # 3. the baseline: field-level NUTS on the explicit log-normal model, all six parameters
    #    free (--quick: two, for a cheaper emulator fit), chains started at the truth as in the paper
    free = ("Omega_c", "sigma_8") if q else jade.THETA_NAMES
    nuts = jade.mcmc(cfg, obs, os.path.join(args.out, "nuts"), free=free, chains=1 if q else 2, warmup=4 if q else 300,
                     samples=4 if q else 300, max_depth=3 if q else 8, target_accept=0.9, init="truth", seed=1,
                     progress=progress_line("NUTS"), message=lambda m: print("\nNUTS: " + m, file=sys.stderr))
    print(file=sys.stderr)
    chain = nuts["chain"]
    print("NUTS: %d draws in %.0f s; chains %s" % (len(chain["weight"]), nuts["seconds"], nuts["verdict"]))
    w = chain["weight"] / chain["weight"].sum()
    for name in PARAMS:
        m = np.sum(w * chain[name])
        print("NUTS       %-8s %.4f +- %.4f" % (name, m, np.sqrt(np.sum(w * (chain[name] - m) ** 2))))

    # 4. both posteriors of (Omega_m, sigma_8, S_8, w_0)
    diffusion = {n: post[n] for n in PARAMS}
    plot_corner(os.path.join(args.out, "corner.png"),
                [("diffusion (%d draws)" % post.draws, "C0", diffusion, None),
                 ("NUTS (%d draws)" % len(w), "C1", {n: chain[n] for n in PARAMS}, chain["weight"])], truth)
    print("wrote %s/maps.png and %s/corner.png (%.0f s)" % (args.out, args.out, time.time() - t0))


if __name__ == "__main__":
    main()
