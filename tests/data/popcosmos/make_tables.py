#!/usr/bin/env python3
"""Flatten reference_outputs.json (pop-cosmos networks evaluated in float64 by an independent
implementation; see models/popcosmos/README.md) into whitespace tables that the C tests read.
Run from this folder: python3 make_tables.py  (the .txt files are committed)."""
import json

d = json.load(open("reference_outputs.json"))


def row(*vecs):
    out = []
    for v in vecs:
        out.extend(v if isinstance(v, list) else [v])
    return " ".join(repr(float(x)) for x in out)


def write(name, header, rows):
    with open(name, "w") as f:
        f.write("# " + header + "\n")
        for r in rows:
            f.write(r + "\n")


write("photulator_ref.txt", "theta16[16] absmag[26] apparent_mag[26] flux_nanomaggies[26] asinh_mag[26]",
      [row(c["theta16"], c["absmag"], c["apparent_mag"], c["flux_nanomaggies"], c["asinh_mag"])
       for c in d["photulator"]["cases"]])
write("noise_score_ref.txt", "t x_norm[26] c_norm[26] score[26]",
      [row(c["t"], c["x_norm"], c["c_norm"], c["score"]) for c in d["noise_model_score"]["cases"]])
write("noise_sample_ref.txt",
      "z_base[26] c_norm[26] x_norm_eps_dopri_tol1e10[26] x_norm_eps_rk4_500[26] sigma_nanomaggies[26]",
      [row(c["z_base"], c["c_norm"], c["x_norm_eps_dopri_tol1e10"], c["x_norm_eps_rk4_500"],
           c["sigma_nanomaggies"]) for c in d["noise_model_pf_ode_sample"]["cases"]])
lp = d["noise_model_pf_ode_logprob"]
res = lp["results"]
write("noise_logprob_ref.txt",
      "x_norm[26] c_norm[26] log_prob_norm_dopri1e-8 log_prob_norm_rk4_500 log_prob_norm_rk4_2000 delta_logp_dopri1e-8",
      [row(lp["x_norm"][i], lp["c_norm"][i], res["dopri_1e-8"]["log_prob_norm"][i],
           res["rk4_500"]["log_prob_norm"][i], res["rk4_2000"]["log_prob_norm"][i],
           res["dopri_1e-8"]["delta_logp"][i]) for i in range(len(lp["x_norm"]))])
sm = d["stellar_mass_emulator"]
write("mass_ref.txt", "theta16[16] Mfrac", [row(t, m) for t, m in zip(sm["theta16"], sm["Mfrac"])])
