"""Every figure's report() caption exists, so `snakemake --report` can render them all."""

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"


def test_every_report_caption_exists():
    captions = [(smk.name, c) for smk in RULES.glob("*.smk") for c in re.findall(r'caption="([^"]+)"', smk.read_text())]
    assert captions, "no report() captions found"
    missing = [f"{smk}: {c}" for smk, c in captions if not (RULES / c).resolve().is_file()]
    assert not missing, f"missing captions: {missing}"


def test_every_caption_is_valid_restructuredtext():
    """`snakemake --report` renders captions as reStructuredText: a stray `|w|` is substitution
    syntax and renders as an error message in the report. Warnings count as errors here."""
    import docutils.core
    import docutils.utils

    captions = sorted((RULES.parent / "report").glob("*.rst"))
    assert captions
    for caption in captions:
        try:
            docutils.core.publish_doctree(caption.read_text(), source_path=str(caption),
                                          settings_overrides={"halt_level": 2, "report_level": 2,
                                                              "warning_stream": False})
        except docutils.utils.SystemMessage as err:
            raise AssertionError(f"{caption.name}: {err}") from None


def test_the_caption_check_catches_a_substitution():
    import docutils.core
    import docutils.utils
    import pytest

    with pytest.raises(docutils.utils.SystemMessage, match="Undefined substitution"):
        docutils.core.publish_doctree("log10 |w| per method", settings_overrides={
            "halt_level": 2, "report_level": 2, "warning_stream": False})
