"""rnnkit: recurrent neural networks for sequence learning, on PyTorch."""

from rnnkit.cells import Activation, Cell, ElmanCell, GRUCell, LSTMCell
from rnnkit.feedback import NARX, Jordan, JordanCell, NARXCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.scan import reverse_padded, scan
from rnnkit.tdnn import TDNN

__version__ = "0.1.0"

__all__ = [
    "Activation", "Cell", "ElmanCell", "GRUCell", "LSTMCell", "JordanCell", "NARXCell",
    "RNN", "LSTM", "GRU", "Recurrent", "Jordan", "NARX", "TDNN", "scan", "reverse_padded",
]
