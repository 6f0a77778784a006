"""A tiny random CogVideoX folder in the published diffusers layout, to try the full-scale path (docs/full_scale.md)
end to end on a laptop: everything the real CogVideoX-5B folder has, at toy sizes and with random weights.

    python scripts/make_tiny_cogvideox.py --output_dir /tmp/CogVideoX-tiny

    model_index.json
    tokenizer/       spiece.model (a sentencepiece unigram model trained here on a few captions), tokenizer_config.json,
                     special_tokens_map.json, added_tokens.json: the files of CogVideoX's T5 tokenizer folder
"""

from __future__ import annotations

import io
import json
from pathlib import Path

T5_SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
CAPTIONS = [
    "walk to the red table, then open the door on the left",
    "turn left and look at the kitchen",
    "sit down on the sofa and look out of the window",
    "pick up the cup from the shelf and turn around",
    "walk forward through the hallway to the blue chair",
]
"""The sentencepiece training text: EgoWorld-like captions, so prompts of that kind tokenise into real pieces."""


def write_tokenizer(folder: str | Path, vocab_size: int = 64, extra_ids: int = 100, max_length: int = 226) -> int:
    """Write a T5 tokenizer folder laid out as CogVideoX's `tokenizer/`: a sentencepiece unigram model trained on
    `CAPTIONS` (T5's ids: pad 0, eos 1, unk 2, no bos) plus `extra_ids` sentinel tokens. Returns the vocabulary size
    (sentencepiece pieces + sentinels), what the T5 encoder's embedding must cover."""
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS * 8), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
    config = {
        **T5_SPECIAL,
        "additional_special_tokens": sentinels,
        "clean_up_tokenization_spaces": True,
        "extra_ids": extra_ids,
        "legacy": True,
        "model_max_length": max_length,
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
    }
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", {**T5_SPECIAL, "additional_special_tokens": sentinels})
    # T5 numbers the sentinels down from the top: <extra_id_0> is the last id
    write_json(folder / "added_tokens.json", {token: pieces + extra_ids - 1 - i for i, token in enumerate(sentinels)})
    return pieces + extra_ids


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
