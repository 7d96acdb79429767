"""Versioning with DVC (rule file workflow/rules/versioning.smk): the small tracked metrics and
curves (``tracking``) and ``optbias pull`` (``pull``)."""
