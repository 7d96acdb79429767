"""Every figure's report() caption exists, so `snakemake --report` can render them all."""

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"


def test_every_report_caption_exists():
    captions = [(smk.name, c) for smk in RULES.glob("*.smk") for c in re.findall(r'caption="([^"]+)"', smk.read_text())]
    assert captions, "no report() captions found"
    missing = [f"{smk}: {c}" for smk, c in captions if not (RULES / c).resolve().is_file()]
    assert not missing, f"missing captions: {missing}"
