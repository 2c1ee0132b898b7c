"""Generic building blocks with no VRNN knowledge."""

from hvrnn.layers.conv import ConvNormAct, ConvOn1x1, InitNet, ResBlock, UpConv, conv2d
from hvrnn.layers.convert import to_center_taps
from hvrnn.layers.convlstm import ConvLSTMCell, LSTMState

__all__ = ["ConvLSTMCell", "ConvNormAct", "ConvOn1x1", "InitNet", "LSTMState", "ResBlock",
           "UpConv", "conv2d", "to_center_taps"]
