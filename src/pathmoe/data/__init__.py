"""Data stage: document sources -> raw/*.jsonl -> tokenizer/ -> token shards (docs/ARCHITECTURE.md).

Heavy libraries (transformers, datasets, pyarrow) are imported inside the functions that need
them, so importing this package (and the tokenizer worker processes) stays cheap.
"""

from pathmoe.data.builtin_corpus import LEXICON, generate_documents
from pathmoe.data.config import validate_dataset_config
from pathmoe.data.fingerprint import dataset_identity
from pathmoe.data.prepare import prepare_dataset
from pathmoe.data.shards import tokenize_to_shards
from pathmoe.data.sources import fetch_documents, iter_documents
from pathmoe.data.token_shards import TokenShards
from pathmoe.data.tokenizer import build_tokenizer, load_tokenizer

__all__ = [
    "LEXICON", "TokenShards", "build_tokenizer", "dataset_identity", "fetch_documents", "generate_documents", "iter_documents",
    "load_tokenizer", "prepare_dataset", "tokenize_to_shards", "validate_dataset_config",
]
