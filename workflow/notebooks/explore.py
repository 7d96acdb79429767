# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring the results
#
# This notebook reads the pipeline's outputs in the working directory (a finished `snakemake` run)
# through `optbias.paper.explore`; every value it shows comes from a library call, so it matches the
# summaries, the audit and the report. The pipeline runs it (rule `explore`) and writes
# `paper/build/explore.ipynb` and `paper/build/explore.html`.
#
# To explore interactively: `source .venv/bin/activate && jupyter lab workflow/notebooks/explore.ipynb`
# (jupytext keeps the `.ipynb` and this `.py` in step), then change the parameters below. Clear the
# outputs before committing the `.ipynb`: the committed copy holds none.

# %% tags=["parameters"]
benchmark = "permuted"  # class_incremental | permuted
a = "shampoo"           # the two optimizers to compare (names of config/config.yaml's `optimizers`)
b = "adagrad"
seed = 0                # the seed whose loss curves are drawn
root = "../.."          # the pipeline's working directory (the repository), seen from this folder

# %%
from IPython.display import Image, Markdown, display

from optbias.paper import explore

summary = explore.load(root, f"data/summary/{benchmark}.json")
probes = explore.load(root, f"data/summary/probes_{benchmark}.json")
audit = explore.load(root, "data/audit.json")
display(Markdown(f"**Benchmark** `{benchmark}`; optimizers {', '.join(f'`{o}`' for o in summary['order'])}; "
                 f"comparing `{a}` with `{b}`."))

# %% [markdown]
# ## The headline figures
# As the pipeline drew them (`figures/`).

# %%
for figure in explore.HEADLINE_FIGURES[benchmark]:
    display(Markdown(f"`{figure}`"), Image(filename=f"{root}/{figure}"))

# %% [markdown]
# ## Every optimizer: the summary metrics
# Mean over seeds with the Student-t 95% CI (`data/summary/<benchmark>.json`).

# %%
explore.summary_table(summary)

# %% [markdown]
# ## Accuracy matrices
# R[i][j]: test accuracy on task j after training task i, averaged over seeds.

# %%
for name in (a, b):
    display(Markdown(f"**{name}**"), explore.mean_accuracy_matrix(summary, name).round(3))

# %% [markdown]
# ## Loss curves
# The training loss of one seed, task boundaries dotted.

# %%
display(Image(data=explore.as_png(explore.loss_curves(root, benchmark, summary["order"], seed))))

# %% [markdown]
# ## `a` against `b`, paired by seed
# The mean of the per-seed differences a − b with its Student-t 95% CI, as the claims audit
# computes a comparison.

# %%
explore.compare(summary, a, b)

# %% [markdown]
# The probe measures of the last hidden layer (`data/summary/probes_<benchmark>.json`).

# %%
explore.compare_probes(probes, a, b)

# %% [markdown]
# ## The claims audit
# Every claim with its verdict (`data/audit.json`); pass a verdict to filter.

# %%
explore.audit_table(audit)

# %%
explore.audit_table(audit, verdict="NOT SUPPORTED")

# %% [markdown]
# ## Rerunning one claim
# Rerun the rule that makes a claim's evidence, and everything downstream of it up to the audit:

# %%
print(explore.rerun_command(audit, audit["claims"][0]["id"]))
