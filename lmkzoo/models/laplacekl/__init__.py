"""LaplaceKL (Robinson et al. 2019): the RCN generator and the PatchGAN discriminator."""

from lmkzoo.models.laplacekl.patch_discriminator import PatchDiscriminator
from lmkzoo.models.laplacekl.rcn_network import PAPER_PARAMETERS, RCN, rcn_channels

__all__ = ["PAPER_PARAMETERS", "PatchDiscriminator", "RCN", "rcn_channels"]
