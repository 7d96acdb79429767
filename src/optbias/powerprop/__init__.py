"""Powerpropagation (rule file workflow/rules/powerprop.smk): the reparameterization, the trajectory
equivalence with its optimizer form (``optbias.optim.powerprop``), the sparsity experiment, its
summary and figures."""
