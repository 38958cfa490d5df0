"""LOTR (Watchareeruetai et al. 2021): the Localization Transformer and its CNN + FFN baseline."""
from lmkzoo.models.lotr.lotr_network import CNNFFNNetwork, LOTRNetwork, lotr_backbone_args
from lmkzoo.models.lotr.transformer import (
    LearnedEmbedding,
    PositionalMultiHeadAttention,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)

__all__ = ["CNNFFNNetwork", "LOTRNetwork", "LearnedEmbedding", "PositionalMultiHeadAttention", "TransformerDecoderLayer",
           "TransformerEncoderLayer", "lotr_backbone_args"]
