"""The text encoder: packaged all-MiniLM-L6-v2 against sentence-transformers, and the T5 path on a tiny random T5."""

import pytest
import torch
from transformers import AutoTokenizer, T5Config, T5EncoderModel

from egotwin.models.text_encoder import MINILM_MAX_LENGTH, TextEncoder, minilm_path


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder.from_minilm()


def test_minilm_token_embeddings_and_mask(minilm):
    embeddings, mask = minilm.encode(["walk to the red table, then open the door on the left", ""])
    assert minilm.dim == 384 and minilm.max_length == MINILM_MAX_LENGTH
    assert embeddings.shape == (2, 32, 384) and mask.shape == (2, 32) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [15, 2]  # [CLS] 13 word pieces [SEP]; "" is [CLS] [SEP]
    assert embeddings[~mask].abs().max() == 0  # padding is zeroed
    assert embeddings[mask].abs().amin(-1).max() > 0


def test_minilm_matches_sentence_transformers(minilm):
    """Mean-pooling our token embeddings over the mask (and L2-normalising, the model's last module) must give
    sentence-transformers' sentence embedding."""
    from sentence_transformers import SentenceTransformer

    prompts = ["turn left and look at the kitchen", "sit down on the sofa"]
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(prompts, convert_to_tensor=True)
    embeddings, mask = minilm.encode(prompts)
    pooled = torch.nn.functional.normalize(embeddings.sum(1) / mask.sum(1, keepdim=True), dim=-1)
    torch.testing.assert_close(pooled, reference.cpu(), atol=1e-5, rtol=1e-4)


def test_minilm_embeddings_carry_meaning(minilm):
    embeddings, mask = minilm.encode(["walk to the table", "go over to the table", "open the fridge door"])
    pooled = torch.nn.functional.normalize(embeddings.sum(1) / mask.sum(1, keepdim=True), dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.1


def test_long_prompts_are_truncated(minilm):
    embeddings, mask = minilm.encode("walk " * 100)
    assert embeddings.shape == (1, 32, 384) and bool(mask.all())
    with pytest.raises(TypeError):
        minilm.encode([1, 2])


def test_t5_path_from_a_cogvideox_folder(tmp_path, minilm):
    folder = tmp_path / "cogvideox"
    torch.manual_seed(0)
    config = T5Config(vocab_size=minilm.tokenizer.vocab_size, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4)
    T5EncoderModel(config).save_pretrained(folder / "text_encoder")
    minilm.tokenizer.save_pretrained(folder / "tokenizer")  # any tokenizer that exists offline; real folders hold T5's

    encoder = TextEncoder.load(str(folder))
    assert encoder.dim == 16 and encoder.max_length == 226
    embeddings, mask = encoder.encode(["open the door", "walk"])
    assert embeddings.shape == (2, 226, 16) and mask.sum(1).tolist() == [5, 3]
    # As CogVideoX calls T5: the padded ids without an attention mask.
    ids = AutoTokenizer.from_pretrained(folder / "tokenizer")(
        ["open the door", "walk"], padding="max_length", max_length=226, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        expected = T5EncoderModel.from_pretrained(folder / "text_encoder")(input_ids=ids).last_hidden_state
    torch.testing.assert_close(embeddings, expected)
    with pytest.raises(FileNotFoundError, match="text_encoder"):
        TextEncoder.from_t5(tmp_path)


def test_t5_tokenizer_folder_as_cogvideox_publishes_it(tmp_path):
    """The published CogVideoX `tokenizer/` holds a sentencepiece `spiece.model` and its configs (no tokenizer.json):
    one trained here offline loads through `TextEncoder` (sentencepiece + protobuf convert it), its ids are
    sentencepiece's own plus T5's </s> and <pad>, and the embeddings are the T5 encoder's on those ids."""
    import sentencepiece as spm

    from scripts.make_tiny_cogvideox import write_tokenizer

    folder = tmp_path / "cogvideox"
    vocab_size = write_tokenizer(folder / "tokenizer")
    assert sorted(p.name for p in (folder / "tokenizer").iterdir()) == [
        "added_tokens.json",
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer_config.json",
    ]
    torch.manual_seed(0)
    config = T5Config(vocab_size=vocab_size, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4)
    T5EncoderModel(config).save_pretrained(folder / "text_encoder")

    encoder = TextEncoder.load(str(folder))
    prompts = ["open the door on the left", "sit down"]
    embeddings, mask = encoder.encode(prompts)
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer" / "spiece.model"))
    ids = torch.zeros(2, 226, dtype=torch.long)  # <pad> is 0
    for row, prompt in enumerate(prompts):
        own = pieces.encode(prompt) + [1]  # </s> is 1
        ids[row, : len(own)] = torch.tensor(own)
    assert mask.sum(1).tolist() == [(ids[row] != 0).sum().item() for row in range(2)]
    with torch.no_grad():
        expected = T5EncoderModel.from_pretrained(folder / "text_encoder")(input_ids=ids).last_hidden_state
    torch.testing.assert_close(embeddings, expected)
    assert encoder.tokenizer.convert_tokens_to_ids("<extra_id_0>") == vocab_size - 1
