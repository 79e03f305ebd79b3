"""The tokenizer part of a GGUF file (``tokenizer.ggml.*``), following llama.cpp's convert_hf_to_gguf.py.

    add_vocab(writer, hf_dir, vocab_size, source_gguf=Path("base.gguf"))   # or source_gguf=None

- The base model was a GGUF (the embedded SmolLM2 and Gemma 3): its tokenizer metadata is copied as it is:
  it is exactly what llama.cpp wrote for that tokenizer (pre-tokenizer name, scores, token types), and the
  fine-tune did not change the tokenizer.
- Otherwise it is built from the Hugging Face tokenizer files, as llama.cpp does: ``tokenizer.model``
  (SentencePiece) -> ``llama`` with scores; a ``tokenizer.json`` BPE with byte fallback -> ``llama`` through
  gguf's ``LlamaHfVocab``; a byte-level BPE -> ``gpt2`` with merges, the pre-tokenizer named by hashing the
  tokens of llama.cpp's check text (the few known hashes below; an unknown one gets ``default`` and a warning).

EOS / end-of-turn ids and the chat template are not written here: the caller sets them from the run's
template (``stops.py``), so they are what the model was trained to emit.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any, Optional

# keys the caller writes itself (from the run), never copied from the base
OWN_KEYS = ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
            "tokenizer.chat_template")

# llama.cpp convert_hf_to_gguf.py get_vocab_base_pre(): sha256 of the token ids of CHECK_TEXT -> pre-tokenizer
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
KNOWN_PRE = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
}


def add_vocab(writer: Any, hf_dir: Path, vocab_size: int, source_gguf: Optional[Path] = None) -> list[str]:
    """Write the tokenizer metadata; returns warnings for the user (an unknown pre-tokenizer)."""
    if source_gguf is not None and _gguf_vocab_size(source_gguf) == vocab_size:
        copy_tokenizer_fields(writer, source_gguf)
        return []
    if (hf_dir / "tokenizer.model").is_file():
        return _sentencepiece(writer, hf_dir, vocab_size)
    if _is_llama_hf(hf_dir):
        return _llama_hf(writer, hf_dir, vocab_size)
    return _gpt2(writer, hf_dir, vocab_size)


def copy_tokenizer_fields(writer: Any, source_gguf: Path) -> None:
    import gguf

    from mlxsft.models.gguf_read import read_fields

    fields, _ = read_fields(source_gguf, full=lambda key: key.startswith("tokenizer."))
    for key, field in fields.items():
        if not key.startswith("tokenizer.") or key in OWN_KEYS or key.startswith("tokenizer.chat_template"):
            continue
        sub = gguf.GGUFValueType(field.sub) if field.sub is not None else None
        writer.add_key_value(key, field.value, gguf.GGUFValueType(field.kind), sub_type=sub)


def _gguf_vocab_size(path: Path) -> int:
    from mlxsft.models.gguf_read import read_gguf

    return read_gguf(path).vocab_size or -1


def _special_vocab(writer: Any, hf_dir: Path, vocab_size: int, merges: bool) -> None:
    import gguf

    special = gguf.SpecialVocab(hf_dir, load_merges=merges, n_vocab=vocab_size)
    special.chat_template = None  # the caller writes the run's template
    special.special_token_ids.pop("eos", None)  # and the run's EOS
    special.add_to_gguf(writer, quiet=True)


def _sentencepiece(writer: Any, hf_dir: Path, vocab_size: int) -> list[str]:
    import gguf

    return _llama_style(writer, gguf.SentencePieceVocab(hf_dir), hf_dir, vocab_size)


def _llama_style(writer: Any, vocab: Any, hf_dir: Path, vocab_size: int) -> list[str]:
    """tokenizer.ggml.model "llama": token list with scores and types (SentencePiece, or HF BPE with byte fallback)."""
    tokens, scores, types = _padded(vocab.all_tokens(), vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    _special_vocab(writer, hf_dir, vocab_size, merges=False)
    return []


def _is_llama_hf(hf_dir: Path) -> bool:
    path = hf_dir / "tokenizer.json"
    if not path.is_file():
        return False
    model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _llama_hf(writer: Any, hf_dir: Path, vocab_size: int) -> list[str]:
    import gguf

    return _llama_style(writer, gguf.LlamaHfVocab(hf_dir), hf_dir, vocab_size)


def _gpt2(writer: Any, hf_dir: Path, vocab_size: int) -> list[str]:
    """Byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM): llama.cpp's get_vocab_base()."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    vocab = tokenizer.get_vocab()
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            special = decoder[i].special if i in decoder else False
            looks_special = token.startswith("<|") and token.endswith("|>")
            types.append(gguf.TokenType.CONTROL if special or looks_special else gguf.TokenType.USER_DEFINED)
            tokens.append(token)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    pre, warnings = _pre_tokenizer(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    _special_vocab(writer, hf_dir, vocab_size, merges=True)
    return warnings


def _pre_tokenizer(tokenizer: Any) -> tuple[str, list[str]]:
    digest = sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest()
    if digest in KNOWN_PRE:
        return KNOWN_PRE[digest], []
    return "default", [f"unknown BPE pre-tokenizer (hash {digest[:12]}): the GGUF says 'default'; llama.cpp may "
                       "split some text differently from transformers"]


def _padded(entries: Any, vocab_size: int) -> tuple[list[bytes], list[float], list[int]]:
    """Token list padded (or cut) to the embedding's row count, as llama.cpp does."""
    import gguf

    tokens, scores, types = [], [], []
    for text, score, kind in entries:
        tokens.append(text)
        scores.append(score)
        types.append(int(kind))
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(int(gguf.TokenType.UNUSED))
    return tokens[:vocab_size], scores[:vocab_size], types[:vocab_size]
