"""The README is part of the contract: its config reference and convention table cannot drift."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from otlp_feedback.config import Settings
from otlp_feedback.mapping import convention

README = (Path(__file__).parents[2] / "README.md").read_text()


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_leaf_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_in_the_readme_config_reference() -> None:
    missing = [key for key in _leaf_keys(Settings) if f"| `{key}` |" not in README]
    assert not missing, f"README config reference lacks {missing}"


def test_every_feedback_event_name_is_in_the_readme_convention_table() -> None:
    names = [*convention.FEEDBACK_EVENT_NAMES, convention.GENAI_EVALUATION_EVENT]
    assert all(f"| `{name}` |" in README for name in names)


def test_every_attribute_key_of_the_convention_is_documented() -> None:
    keys = {
        key
        for table in (convention.ENVELOPE_KEYS, *convention.FIELD_KEYS.values())
        for keys in table.values()
        for key in keys
    }
    # The README abbreviates families as feedback.quality.{accuracy,...}; expand those.
    documented = README
    for family, members in (
        ("feedback.quality.", "accuracy,relevance,coherence,completeness,safety"),
        ("feedback.health.", "error_rate,availability"),
        ("feedback.health.", "cpu_percent,memory_mb,memory_percent,network_mbps,active_requests"),
        ("gen_ai.request.", "temperature,top_p,max_tokens,top_k"),
        ("feedback.experiment.", "cost,quality,latency_ms,user_satisfaction"),
    ):
        if f"`{family}{{{members}}}`" in README:
            documented += " ".join(f"`{family}{m}`" for m in members.split(","))
    missing = sorted(k for k in keys if f"`{k}`" not in documented)
    assert not missing, f"README convention lacks {missing}"


def test_every_readme_block_says_whether_it_runs() -> None:
    from otlp_feedback.testing.readme import LANGUAGES, blocks

    found = blocks(Path(__file__).parents[2] / "README.md")
    unmarked = [(b.line, b.language) for b in found if b.language not in LANGUAGES]
    assert not unmarked, f"README blocks with no or an unknown language: {unmarked}"
    runnable = [b for b in found if b.runnable]
    assert len(runnable) >= 5  # the SDK example, the curl examples, the consumer example
    # A runnable block needs nothing the reader has not got: no config file it never made.
    assert not [b.line for b in runnable if "config.yaml" in b.code]


def test_a_sh_block_says_what_it_prints_in_comment_lines() -> None:
    from otlp_feedback.testing.readme import Block

    block = Block(1, "sh", "# a note\ncurl -sS x \\\n  -d '{}'\n# {\"accepted\":1}\n", True)
    assert block.expected == ['{"accepted":1}']
