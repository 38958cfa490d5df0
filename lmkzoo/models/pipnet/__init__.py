from lmkzoo.models.pipnet.pipnet_network import PIPNet

__all__ = ["PIPNet"]
