"""Where an exported model's answer ends: the EOS and end-of-turn tokens (and text) of the run's template.

    stops = find_stops(hf_tokenizer, template, template_kwargs, base_eos_ids=[2])
    stops.ids        # [2]               -> generation_config.json eos_token_id, GGUF eos/eot ids
    stops.strings    # ["<|im_end|>"]    -> Ollama ``PARAMETER stop`` lines

Exported models that never stop are the classic failure of fine-tune exports: the template ends an assistant
turn with a marker (``<|im_end|>``, ``<end_of_turn>``, ``<|eot_id|>``) that is not the tokenizer's EOS, and
the runtime only stops at EOS. The marker is found the way the trainer's masks and ``mlxsft chat`` find it
(``end_of_turn_text``: render an assistant message and read what follows it), so every format stops exactly
where the model was trained to stop. A marker that is not a single token (ChatML on a base model whose
vocabulary lacks ``<|im_end|>``) can only be a stop *string*; ``eot_is_token`` says so and the export warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional


@dataclass(frozen=True)
class Stops:
    eos_id: Optional[int]  # the tokenizer's EOS
    eot_id: Optional[int]  # the template's end-of-turn token, when it is a single token
    eot_text: str  # what the template writes after an assistant message ('' when nothing)
    ids: list[int] = field(default_factory=list)  # every id generation stops at, EOS first
    strings: list[str] = field(default_factory=list)  # the text of each stop, end-of-turn marker first

    @property
    def eot_is_token(self) -> bool:
        return not self.eot_text or self.eot_id is not None


def find_stops(hf_tokenizer: Any, template: str, template_kwargs: Optional[dict] = None,
               base_eos_ids: Iterable[int] = ()) -> Stops:
    """EOS, the template's end-of-turn marker and any EOS ids the base's generation_config already lists."""
    from mlxsft.backends.generation import end_of_turn_text

    eos_id = getattr(hf_tokenizer, "eos_token_id", None)
    eot_text = end_of_turn_text(hf_tokenizer, template, template_kwargs)
    eot_id = None
    if eot_text:
        enc = hf_tokenizer.encode(eot_text, add_special_tokens=False)
        if len(enc) == 1:
            eot_id = int(enc[0])
    ids: list[int] = []
    for i in [eos_id, eot_id, *base_eos_ids]:
        if isinstance(i, int) and i >= 0 and i not in ids:
            ids.append(i)
    strings: list[str] = [eot_text] if eot_text else []
    for i in ids:
        text = hf_tokenizer.convert_ids_to_tokens(i)
        if isinstance(text, str) and text and text not in strings:
            strings.append(text)
    return Stops(eos_id=eos_id, eot_id=eot_id, eot_text=eot_text, ids=ids, strings=strings)


def eos_ids_of(generation_config: Optional[dict]) -> list[int]:
    """``eos_token_id`` of a generation_config.json, as a list (it may be an int, a list or missing)."""
    value = (generation_config or {}).get("eos_token_id")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []
