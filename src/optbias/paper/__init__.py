"""The paper (rule file workflow/rules/paper.smk): the claims audit (``claims``) and the rendering of
paper/paper.md with every number filled in from the pipeline (``render``)."""
