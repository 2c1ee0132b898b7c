"""Generic building blocks with no VRNN knowledge."""

from hvrnn.layers.conv import ConvNormAct, InitNet, ResBlock, UpConv, conv2d
from hvrnn.layers.convlstm import ConvLSTMCell, LSTMState

__all__ = ["ConvLSTMCell", "ConvNormAct", "InitNet", "LSTMState", "ResBlock", "UpConv", "conv2d"]
