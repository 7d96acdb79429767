"""Performance tooling: where the time goes, always as ratios of things timed side by side in one run
(never a timed unit test). The measured numbers live in the generated page docs/performance.md
(and .json), written by ``optbias bench``; nothing here states them.

* ``step``: one optimizer's training-step time, the float32 matmul peak, and ``optbias
  perf-shampoo`` (Shampoo / AdamW);
* ``runlog``: where a pipeline run's time went, read from Snakemake's logs and ``benchmarks/`` files
  (``optbias runs``, and figure 5 of ``optbias bench``); imports no torch;
* ``flops``: FLOPs of a training step counted from below (the model, and each optimizer through its
  registry row); ``bound``: the compute lower bound of a whole run and the gap above it;
* ``bench``: ``optbias bench``, the figures of docs/performance.md, built on ``step``, ``bound`` and
  ``runlog``.

This package imports none of its modules itself, so that ``optbias runs`` does not pay for torch.
"""
