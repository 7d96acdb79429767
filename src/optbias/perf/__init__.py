"""Performance tooling: where the time goes, always as ratios of things timed side by side in one run
(never a timed unit test). The measured numbers live in the generated page docs/performance.md
(and .json), written by ``optbias bench``; nothing here states them.

* ``step``: one optimizer's training-step time, FLOP counts (model, Shampoo's statistics and
  preconditioning), the float32 matmul peak, and ``optbias perf-shampoo`` (Shampoo / AdamW);
* ``runlog``: where a pipeline run's time went, read from Snakemake's logs and ``benchmarks/`` files
  (``optbias runs``, and figure 5 of ``optbias bench``); imports no torch;
* ``bench``: ``optbias bench``, the six figures of docs/performance.md, built on ``step`` and
  ``runlog``.

This package imports none of its modules itself, so that ``optbias runs`` does not pay for torch.
"""
