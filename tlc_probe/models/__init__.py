"""Networks with global-aggregation sites. The zoo (HINet, MPRNet, NAFNet, FFA-Net)
comes with its own issue; for now the toy network the converter demo runs on."""

from .toy import CALayer, HalfIN, ToyNet

__all__ = ["CALayer", "HalfIN", "ToyNet"]
